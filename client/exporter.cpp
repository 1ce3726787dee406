#include <pg_ingest/exporter.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include <libpq-fe.h>

#include <pg_ingest/copy.hpp>

#include "exec.hpp"
#include "socket_breaker.hpp"

namespace pg_ingest {

namespace {

using Clock = Connection::Clock;

// Progress is reported at most this often (in rows) per worker, to keep the callback cheap.
constexpr std::uint64_t k_progress_rows = 4096;
// run(std::ostream&) hands rows to the stream in blocks of about this size.
constexpr std::size_t k_block_bytes = 256 * 1024;
// More connections than any server takes (max_connections) would only fail later, retryably.
constexpr std::size_t k_max_parallelism = 1024;
// How long the read-only COMMITs that end an export may take (see finish()).
constexpr std::chrono::seconds k_commit_grace{2};

Error invalid(const std::string& message) {
    return Error(message, "22023", "", "", true);
}

// The caller's output stream refused the bytes (a full disk, a closed pipe): 58030 io_error,
// not retryable (the rows already written cannot be taken back).
Error output_error() {
    return Error("export: writing the output failed", "58030", "", "", true);
}

// A column name as a field of COPY's CSV format, quoted where COPY TO quotes it
// (CopyAttributeOutCSV): one holding a delimiter, quote or line end; an empty one (NULL's
// spelling); and `\.` alone on its line, which COPY FROM would read as the end of the data.
std::string csv_field(const std::string& text, bool alone) {
    if (text.find_first_of(",\"\r\n") == std::string::npos && !text.empty() &&
        !(alone && text == "\\.")) {
        return text;
    }
    std::string quoted = "\"";
    for (const char c : text) {
        quoted += c;
        if (c == '"') {
            quoted += '"';
        }
    }
    return quoted + "\"";
}

// A column name as a field of COPY's text format: backslash, tab, CR and LF escaped.
std::string text_field(const std::string& text) {
    std::string escaped;
    for (const char c : text) {
        switch (c) {
            case '\\':
                escaped += "\\\\";
                break;
            case '\t':
                escaped += "\\t";
                break;
            case '\n':
                escaped += "\\n";
                break;
            case '\r':
                escaped += "\\r";
                break;
            case '\b':
                escaped += "\\b";
                break;
            case '\f':
                escaped += "\\f";
                break;
            case '\v':
                escaped += "\\v";
                break;
            default:
                escaped += c;
        }
    }
    return escaped;
}

// Character classes of the server's SQL lexer (scan.l); bytes from 0x80 are letters to it.
bool ident_start(char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || u == '_' || u >= 0x80;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_hex_digit(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_octal_digit(char c) {
    return c >= '0' && c <= '7';
}

bool is_binary_digit(char c) {
    return c == '0' || c == '1';
}

// A name goes on with '$' (x$$$ is one name), a dollar-quote tag does not.
bool ident_cont(char c) {
    return ident_start(c) || is_digit(c) || c == '$';
}

// The filter is spliced into statements as "(where)", next to the range predicates. One that
// closes that parenthesis itself ("a = 1) OR (b = 2") would still parse, with the ranges
// ANDed to its first half only, and every range would export the second half again. So its
// parentheses must balance outside quoted text and comments, and no ';' may end the statement.
// It is read token by token as the server's lexer reads it (with standard_conforming_strings
// on, as the export's sessions set it): a token that hid a parenthesis here but not there
// would let one through. Where server versions part (a number run into a name or a '$': 0x1F$$
// is a number and a dollar quote from PostgreSQL 16 on, 0 and the name x1F$$ before 15), the
// filter is refused: from 15 on the server refuses a number run into a name itself, and a
// number followed by a quote or a parameter is a syntax error.
void check_filter(const std::string& where) {
    const auto refuse = [&](const std::string& why) {
        throw Error("export: the WHERE filter " + why, "42601", "",
                    "Give one boolean expression, such as: a = 1 OR b = 2.", true);
    };
    const std::size_t n = where.size();
    const auto at = [&](std::size_t k) { return k < n ? where[k] : '\0'; };
    // Where a "--" comment starting at k ends (at its CR or LF, as the server ends it).
    const auto comment_end = [&](std::size_t k) {
        const std::size_t end = where.find_first_of("\r\n", k);
        return end == std::string::npos ? n : end;
    };
    // A quote after whitespace that holds a newline (comments allowed) continues the string
    // that ended at k, in its mode: E'a'<newline>'\'' is one escaped string.
    const auto continued_at = [&](std::size_t k) {
        bool newline = false;
        while (k < n) {
            const char c = where[k];
            if (c == '\n' || c == '\r') {
                newline = true;
                ++k;
            } else if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
                ++k;
            } else if (c == '-' && at(k + 1) == '-') {
                k = comment_end(k);
            } else {
                break;
            }
        }
        return newline && at(k) == '\'' ? k : std::string::npos;
    };
    // A '...' string from its opening quote at k (E'...' when `escapes`); returns its end.
    const auto skip_string = [&](std::size_t k, bool escapes) {
        while (true) {
            ++k;
            while (true) {
                if (k >= n) {
                    refuse("has an unterminated quoted string");
                }
                if (escapes && where[k] == '\\') {
                    k += 2;
                } else if (where[k] != '\'') {
                    ++k;
                } else if (at(k + 1) == '\'') {
                    k += 2;
                } else {
                    ++k;
                    break;
                }
            }
            const std::size_t next = continued_at(k);
            if (next == std::string::npos) {
                return k;
            }
            k = next;
        }
    };
    // Digits from k, with single '_' between them (PostgreSQL 16); returns their end.
    const auto skip_digits = [&](std::size_t k, bool (*digit)(char)) {
        while (digit(at(k)) || (at(k) == '_' && k > 0 && digit(where[k - 1]) && digit(at(k + 1)))) {
            ++k;
        }
        return k;
    };
    // After a number or a parameter: a name or a '$' run into it is read differently by
    // different server versions (see above).
    const auto end_number = [&](std::size_t k) {
        if (ident_cont(at(k))) {
            refuse("runs a number into a name or a '$' (put a space between them)");
        }
        return k;
    };
    int depth = 0;
    std::size_t i = 0;
    while (i < n) {
        const char c = where[i];
        if (c == '\'') {
            i = skip_string(i, false);
        } else if ((c == 'E' || c == 'e') && at(i + 1) == '\'') {
            // Only at the start of a token: in "name'...'" the E ends a name.
            i = skip_string(i + 1, true);
        } else if (ident_start(c)) {
            // A name or keyword, '$' included; B'..', X'..', N'..' and U&'..' strings read as
            // a name and then a plain string, which quotes the same text.
            ++i;
            while (ident_cont(at(i))) {
                ++i;
            }
        } else if (c == '"') {
            const std::size_t end = where.find('"', i + 1);
            if (end == std::string::npos) {
                refuse("has an unterminated quoted identifier");
            }
            i = end + 1;  // a doubled "" inside reads as two quoted parts: same balance
        } else if (is_digit(c) || (c == '.' && is_digit(at(i + 1)))) {
            // A number: 42, 4.2, .42, 4e2, 4.2E-1; 0x2A, 0o52, 0b101010, 4_200 (16 and later).
            const char radix = static_cast<char>(at(i + 1) | 0x20);
            bool (*radix_digit)(char) = radix == 'x'   ? is_hex_digit
                                        : radix == 'o' ? is_octal_digit
                                        : radix == 'b' ? is_binary_digit
                                                       : nullptr;
            const std::size_t digits = at(i + 2) == '_' ? i + 3 : i + 2;
            if (c == '0' && radix_digit != nullptr && radix_digit(at(digits))) {
                i = end_number(skip_digits(digits, radix_digit));
                continue;
            }
            i = skip_digits(i, is_digit);
            if (at(i) == '.' && at(i + 1) != '.') {  // "1..2" is 1, then "..2"
                i = skip_digits(i + 1, is_digit);
            }
            if (at(i) == 'e' || at(i) == 'E') {
                const std::size_t sign = at(i + 1) == '+' || at(i + 1) == '-' ? i + 2 : i + 1;
                if (is_digit(at(sign))) {
                    i = skip_digits(sign, is_digit);
                }
            }
            i = end_number(i);
        } else if (c == '$') {
            // At the start of a token: a dollar quote $tag$...$tag$ (the tag a name without
            // '$', or empty), a parameter $1, or else a '$' alone.
            std::size_t t = i + 1;
            if (ident_start(at(t))) {
                while (ident_start(at(t)) || is_digit(at(t))) {
                    ++t;
                }
            }
            if (at(t) == '$') {
                const std::string tag = where.substr(i, t - i + 1);
                const std::size_t end = where.find(tag, t + 1);
                if (end == std::string::npos) {
                    refuse("has an unterminated dollar-quoted string");
                }
                i = end + tag.size();
            } else if (is_digit(at(i + 1))) {
                i = end_number(skip_digits(i + 1, is_digit));
            } else {
                ++i;
            }
        } else if (c == '-' && at(i + 1) == '-') {
            i = comment_end(i);
        } else if (c == '/' && at(i + 1) == '*') {
            int nesting = 1;  // PostgreSQL's block comments nest
            i += 2;
            while (nesting > 0) {
                if (i + 1 >= n) {
                    refuse("has an unterminated comment");
                }
                if (where[i] == '/' && where[i + 1] == '*') {
                    ++nesting;
                    i += 2;
                } else if (where[i] == '*' && where[i + 1] == '/') {
                    --nesting;
                    i += 2;
                } else {
                    ++i;
                }
            }
        } else {
            if (c == '(') {
                ++depth;
            } else if (c == ')') {
                if (--depth < 0) {
                    refuse("closes a parenthesis it did not open");
                }
            } else if (c == ';') {
                refuse("holds a ';' (one expression, not statements)");
            }
            ++i;
        }
    }
    if (depth != 0) {
        refuse("leaves a parenthesis open");
    }
}

std::string range_predicate(const std::string& key, const KeyRange& range) {
    std::string lower;
    std::string upper;
    if (range.lower) {
        lower = key + " >= " + std::to_string(*range.lower);
    }
    if (range.upper) {
        upper = key + " < " + std::to_string(*range.upper);
    }
    std::string predicate = lower;
    if (!upper.empty()) {
        predicate += (predicate.empty() ? "" : " AND ") + upper;
    }
    if (range.with_nulls && !predicate.empty()) {
        predicate = "(" + predicate + " OR " + key + " IS NULL)";
    }
    return predicate;
}

// A worker's connection as fail() reaches it: its socket breaker (owned by the worker's
// Registered) and its cancel handle (shared: a cancel in flight keeps it alive after the worker
// is gone).
struct Reachable {
    const detail::SocketBreaker* socket = nullptr;
    std::shared_ptr<PGcancel> cancel;
};

// How long fail() waits for its cancel requests to be delivered.
constexpr std::chrono::milliseconds k_cancel_bound{500};

// Sends the cancel requests from one thread (PQcancel has no timeout in libpq 15: against a
// host that does not answer it waits for the OS; one thread per failed export keeps that
// bounded) and waits for them at most k_cancel_bound; requests not yet delivered then go on
// alone.
void send_cancels(std::vector<std::shared_ptr<PGcancel>> cancels) {
    if (cancels.empty()) {
        return;
    }
    try {
        auto done = std::make_shared<std::promise<void>>();
        std::future<void> delivered = done->get_future();
        std::thread([cancels = std::move(cancels), done] {
            for (const auto& cancel : cancels) {
                char message[256];
                (void)PQcancel(cancel.get(), message, sizeof message);
            }
            done->set_value();
        }).detach();
        delivered.wait_for(k_cancel_bound);
    } catch (...) {  // no thread: each server notices the closed socket when it next sends
    }
}

// Everything one run shares between its threads.
// The first error ends the export: it is kept, and every connection is broken off (the
// failing worker's too), so that a COPY still scanning on the server, or waiting on a silent
// network, ends now instead of running to its end: the sockets are shut down at once, under the
// lock, and the servers are asked to cancel (a COPY whose filter finds nothing sends nothing,
// so a closed socket alone would not stop it) after it.
struct RunState {
    std::atomic<bool> failed{false};
    std::mutex mutex;
    std::exception_ptr first_error;
    std::vector<Reachable> workers;

    void fail(std::exception_ptr error) {
        std::vector<std::shared_ptr<PGcancel>> cancels;
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (!first_error) {
                first_error = std::move(error);
            }
            if (failed.exchange(true)) {
                return;
            }
            for (const Reachable& worker : workers) {
                worker.socket->break_off();
            }
            try {
                for (const Reachable& worker : workers) {
                    if (worker.cancel) {
                        cancels.push_back(worker.cancel);
                    }
                }
            } catch (...) {  // out of memory: the sockets are shut down, which is what counts
            }
        }
        send_cancels(std::move(cancels));
    }
};

// A worker's connection, registered with the run for fail() to break off.
class Registered {
  public:
    Registered(RunState& state, Connection& connection) : m_state(state), m_socket(connection) {
        Reachable reach{&m_socket, nullptr};
        if (PGcancel* cancel = PQgetCancel(static_cast<PGconn*>(connection.native_handle()))) {
            reach.cancel.reset(cancel, PQfreeCancel);
        }
        std::lock_guard<std::mutex> lock(m_state.mutex);
        if (m_state.failed) {
            m_socket.break_off();  // nothing runs yet: no cancel needed
        }
        m_state.workers.push_back(std::move(reach));
    }
    // Before the connection closes (the breaker goes with this object): the session must not
    // outlive it through our descriptor.
    ~Registered() {
        std::lock_guard<std::mutex> lock(m_state.mutex);
        auto& workers = m_state.workers;
        workers.erase(std::find_if(workers.begin(), workers.end(),
                                   [&](const Reachable& r) { return r.socket == &m_socket; }));
    }
    Registered(const Registered&) = delete;
    Registered& operator=(const Registered&) = delete;

  private:
    RunState& m_state;
    detail::SocketBreaker m_socket;
};

}  // namespace

std::vector<KeyRange> split_key_range(std::int64_t min, std::int64_t max, std::size_t parts) {
    if (parts == 0) {
        throw invalid("split_key_range: parts must be at least 1");
    }
    if (min > max) {
        throw invalid("split_key_range: min is greater than max");
    }
    // 128-bit arithmetic: max - min + 1 overflows int64 for keys spanning the whole range.
    const __int128 span = static_cast<__int128>(max) - min + 1;
    const __int128 count = std::min<__int128>(span, static_cast<__int128>(parts));
    std::vector<KeyRange> ranges(static_cast<std::size_t>(count));
    for (std::size_t i = 1; i < ranges.size(); ++i) {
        const auto boundary =
            static_cast<std::int64_t>(min + span * static_cast<__int128>(i) / count);
        ranges[i - 1].upper = boundary;
        ranges[i].lower = boundary;
    }
    ranges.front().with_nulls = true;
    return ranges;
}

Exporter::Exporter(ConnectionOptions connection, ExportOptions options)
    : m_connection(std::move(connection)), m_options(std::move(options)) {
    if (m_options.table.name.empty()) {
        throw invalid("export: no table given");
    }
    if (m_options.parallelism < 1 || m_options.parallelism > k_max_parallelism) {
        throw invalid("export: parallelism must be between 1 and " +
                      std::to_string(k_max_parallelism) + ", not " +
                      std::to_string(m_options.parallelism));
    }
    if (m_options.format != "csv" && m_options.format != "text") {
        throw invalid("export: format must be csv or text, not '" + m_options.format + "'");
    }
    if (m_options.connect_timeout <= std::chrono::milliseconds::zero()) {
        throw invalid("export: connect_timeout must be positive");
    }
    for (const auto& column : m_options.columns) {
        if (column.empty()) {
            throw invalid("export: empty column name");
        }
    }
    check_filter(m_options.where);
}

ExportResult Exporter::run(const RowCallback& on_row) {
    return run_impl(on_row, nullptr);
}

ExportResult Exporter::run_impl(
    const RowCallback& on_row,
    const std::function<void(const std::vector<std::string>&)>& on_columns) {
    const ExportOptions& o = m_options;
    const std::string table = o.table.quoted();
    std::string select_list;
    for (const auto& column : o.columns) {
        select_list += (select_list.empty() ? "" : ", ") + quote_identifier(column);
    }
    if (select_list.empty()) {
        select_list = "*";
    }
    // The line end lets a filter end in a "--" comment.
    // A filter of blanks only filters nothing, as an empty one.
    const bool filtered = o.where.find_first_not_of(" \t\r\n\f\v") != std::string::npos;
    const std::string filter = filtered ? "(" + o.where + "\n)" : "";

    // Every statement and every connect ends by the export's deadline, not only the COPYs.
    const auto connect = [&] {
        const auto now = Connection::Clock::now();
        const auto by = o.deadline - now > o.connect_timeout ? now + o.connect_timeout : o.deadline;
        return Connection::connect(m_connection, by);
    };
    const auto exec = [&](Connection& connection, const std::string& sql) {
        return detail::exec_until(connection, sql, nullptr, o.deadline);
    };
    // The rows are complete once a COPY has ended: the COMMIT of its read-only transaction
    // changes nothing, so a failure there (the server ended the session meanwhile, the
    // deadline passed after the last row) does not fail the export; the session is closed.
    // Never past the export's deadline: a read-only transaction needs no COMMIT, so a session
    // left without time is closed.
    const auto finish = [&](Connection& connection) noexcept {
        try {
            const auto by = std::min(o.deadline, Connection::Clock::now() + k_commit_grace);
            if (by <= Connection::Clock::now()) {
                connection.close();
                return;
            }
            detail::exec_until(connection, "COMMIT", nullptr, by);
        } catch (...) {
            connection.close();
        }
    };
    // The sessions wait in their transactions while others work (the coordinator for the
    // whole export, a worker while its consumer drains the last rows): a server-side
    // idle_in_transaction_session_timeout must not end them, and the snapshot, half-way.
    // The filter is read as check_filter() reads it, with backslashes plain in '...' strings,
    // whatever standard_conforming_strings the server or role sets: with it off, 'a\' b'
    // would be one string to the server and a string then text to the check, which could let
    // a parenthesis through.
    const std::string session_settings =
        "SET LOCAL idle_in_transaction_session_timeout = 0; "
        "SET LOCAL standard_conforming_strings = on";

    // The coordinator holds the exported snapshot open until every worker has finished.
    Connection coordinator = connect();
    // One round trip: a session idle between the two could meet the timeout already.
    exec(coordinator, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; " + session_settings);
    const std::string snapshot = *exec(coordinator, "SELECT pg_export_snapshot()").get(0, 0);

    ExportResult result;
    // Validates table, columns and filter before any worker starts, and names the columns.
    const Result probe =
        exec(coordinator, "SELECT " + select_list + " FROM " + table +
                              (filter.empty() ? "" : " WHERE " + filter) + " LIMIT 0");
    for (std::size_t c = 0; c < probe.columns(); ++c) {
        result.column_names.push_back(probe.column_name(c));
    }
    std::string key;
    if (!o.split_key.empty()) {
        key = quote_identifier(o.split_key);
        const Result type = exec(
            coordinator,
            "SELECT t.typname::text FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t "
            "ON t.oid = a.atttypid WHERE a.attrelid = " +
                coordinator.quote_literal(table) +
                "::pg_catalog.regclass AND a.attname = " + coordinator.quote_literal(o.split_key) +
                " AND a.attnum > 0 AND NOT a.attisdropped");
        if (type.rows() == 0) {
            throw Error(
                "split key column \"" + o.split_key + "\" of relation " + table + " does not exist",
                "42703", "", "", true);
        }
        const std::string type_name = *type.get(0, 0);
        if (type_name != "int2" && type_name != "int4" && type_name != "int8") {
            throw Error("split key \"" + o.split_key + "\" has type " + type_name +
                            "; it must be smallint, integer or bigint",
                        "42804", "", "Pick an integer column, such as an integer primary key.",
                        true);
        }
    }
    if (!key.empty() && o.parallelism > 1) {
        const Result bounds =
            exec(coordinator, "SELECT min(" + key + ")::text, max(" + key + ")::text FROM " +
                                  table + (filter.empty() ? "" : " WHERE " + filter));
        const auto& min = bounds.get(0, 0);
        const auto& max = bounds.get(0, 1);
        if (min && max) {
            result.ranges = split_key_range(std::strtoll(min->c_str(), nullptr, 10),
                                            std::strtoll(max->c_str(), nullptr, 10), o.parallelism);
        }
    }
    if (result.ranges.empty()) {
        result.ranges.push_back(KeyRange{std::nullopt, std::nullopt, true, 0});
    }

    // Only after the checks (the split key, the filter in the bounds query), so that a bad
    // request writes nothing; a range that fails later may still leave a header alone.
    if (on_columns) {
        on_columns(result.column_names);
    }

    RunState state;
    std::vector<std::uint64_t> bytes(result.ranges.size(), 0);
    const std::string snapshot_literal = coordinator.quote_literal(snapshot);
    auto work = [&](std::size_t index) {
        try {
            KeyRange& range = result.ranges[index];
            std::vector<std::string> conditions;
            if (!key.empty()) {
                const std::string predicate = range_predicate(key, range);
                if (!predicate.empty()) {
                    conditions.push_back(predicate);
                }
            }
            if (!filter.empty()) {
                conditions.push_back(filter);
            }
            std::string query = "SELECT " + select_list + " FROM " + table;
            for (std::size_t i = 0; i < conditions.size(); ++i) {
                query += (i == 0 ? " WHERE " : " AND ") + conditions[i];
            }
            Connection connection = connect();
            const Registered registered(state, connection);
            // Failing while registered breaks off this worker's own COPY too.
            try {
                exec(connection,
                     "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET "
                     "TRANSACTION SNAPSHOT " +
                         snapshot_literal + "; " + session_settings);
                CopyOut copy(connection,
                             "COPY (" + query + ") TO STDOUT WITH (FORMAT " + o.format + ")",
                             o.deadline);
                std::string row;
                std::uint64_t pending_rows = 0;
                std::uint64_t pending_bytes = 0;
                while (!state.failed && copy.read(row)) {
                    on_row(index, row);
                    ++range.rows;
                    bytes[index] += row.size();
                    ++pending_rows;
                    pending_bytes += row.size();
                    if (o.on_progress && pending_rows >= k_progress_rows) {
                        o.on_progress(pending_rows, pending_bytes);
                        pending_rows = 0;
                        pending_bytes = 0;
                    }
                }
                if (o.on_progress && pending_rows > 0) {
                    o.on_progress(pending_rows, pending_bytes);
                }
                if (!copy.active()) {
                    finish(connection);
                }
                // else: another worker failed; destroying the stream closes the connection.
            } catch (...) {
                state.fail(std::current_exception());
            }
        } catch (...) {
            state.fail(std::current_exception());
        }
    };

    std::vector<std::thread> threads;
    threads.reserve(result.ranges.size());
    try {
        for (std::size_t i = 0; i < result.ranges.size(); ++i) {
            threads.emplace_back(work, i);
        }
    } catch (...) {
        state.fail(std::current_exception());  // could not start a thread
    }
    for (auto& thread : threads) {
        thread.join();
    }
    if (state.first_error) {
        std::rethrow_exception(state.first_error);
    }
    finish(coordinator);
    for (std::size_t i = 0; i < result.ranges.size(); ++i) {
        result.rows += result.ranges[i].rows;
        result.bytes += bytes[i];
    }
    return result;
}

ExportResult Exporter::run(std::ostream& out, bool header) {
    // Each worker collects complete rows in its own buffer (one per range, and one thread per
    // range) and appends whole blocks under the lock: rows never interleave, and the lock is
    // taken once per block, not per row.
    std::mutex out_mutex;
    std::vector<std::string> buffers(m_options.parallelism);
    auto write = [&](const std::string& bytes) {
        std::lock_guard<std::mutex> lock(out_mutex);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        if (!out) {
            throw output_error();
        }
    };
    auto on_columns = [&](const std::vector<std::string>& names) {
        if (!header) {
            return;
        }
        const bool csv = m_options.format == "csv";
        std::string line;
        for (std::size_t c = 0; c < names.size(); ++c) {
            line += c == 0 ? "" : (csv ? "," : "\t");
            line += csv ? csv_field(names[c], names.size() == 1) : text_field(names[c]);
        }
        write(line + "\n");  // before any worker starts
    };
    ExportResult result = run_impl(
        [&](std::size_t range, std::string_view row) {
            std::string& buffer = buffers[range];
            buffer.append(row.data(), row.size());
            if (buffer.size() >= k_block_bytes) {
                write(buffer);
                buffer.clear();
            }
        },
        on_columns);
    for (const auto& buffer : buffers) {
        if (!buffer.empty()) {
            write(buffer);
        }
    }
    out.flush();
    if (!out) {
        throw output_error();
    }
    return result;
}

}  // namespace pg_ingest
