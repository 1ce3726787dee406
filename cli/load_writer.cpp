// pg_ingest load --mode insert|upsert: records parsed on the client and written through the
// typed pg_ingest::Writer (multi-row INSERT, INSERT ... ON CONFLICT).
#include <atomic>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/qualified_name.hpp>
#include <pg_ingest/text_value.hpp>
#include <pg_ingest/writer.hpp>

#include "batch_queue.hpp"
#include "common.hpp"
#include "fields.hpp"
#include "load.hpp"

namespace pg_ingest::cli {

namespace {

constexpr std::int64_t k_usecs_per_second = 1000000;
constexpr std::int64_t k_pg_epoch_unix_seconds = 946684800;  // 2000-01-01 00:00:00 UTC

Error located(const Error& error, const RecordOrigin& origin) {
    return Error(std::string(error.what()) + " (" + where(origin) + ")", error.sqlstate(),
                 error.detail(), error.hint(), error.connection_usable());
}

bool is_utc_zone(std::string zone) {
    for (char& c : zone) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    for (const char* utc : {"utc", "etc/utc", "gmt", "etc/gmt", "uct", "etc/uct", "universal",
                            "etc/universal", "zulu", "etc/zulu", "z", "greenwich", "etc/greenwich",
                            "gmt0", "etc/gmt0", "gmt+0", "gmt-0"}) {
        if (zone == utc) {
            return true;
        }
    }
    return false;
}

// The UTC offset (seconds east) in force at `unix_seconds` in the zone TZ names; nullopt when
// out of the C library's range.
std::optional<std::int64_t> utc_offset_at(std::int64_t unix_seconds) {
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    if (::localtime_r(&t, &tm) == nullptr) {
        return std::nullopt;
    }
    return tm.tm_gmtoff;
}

// timestamptz input without an offset means the session's TimeZone, as it would for COPY. The
// zone is resolved with the system's tz database (the one Debian's PostgreSQL uses), through
// TZ and localtime_r(): set once here, before any loading thread starts. Not mktime(): it
// resolves a repeated local time by a hint left from its previous call (shared by all threads).
TextValueOptions session_time_zone(Connection& connection) {
    const Result result = connection.execute("SELECT current_setting('TimeZone')");
    const std::string zone = result.get(0, 0).value_or("UTC");
    TextValueOptions options;
    if (is_utc_zone(zone)) {
        return options;
    }
    const bool known =
        zone.find("..") == std::string::npos && std::ifstream("/usr/share/zoneinfo/" + zone).good();
    if (!known) {
        options.local_to_utc = [zone](std::int64_t) -> std::int64_t {
            throw Error("timestamptz value without a UTC offset, and the session time zone '" +
                            zone +
                            "' is unknown to the client: add offsets to the values or set "
                            "PGTZ=UTC",
                        "22023", "", "", true);
        };
        return options;
    }
    ::setenv("TZ", zone.c_str(), 1);
    ::tzset();
    options.local_to_utc = [](std::int64_t local) -> std::int64_t {
        std::int64_t seconds = local / k_usecs_per_second;
        std::int64_t micros = local % k_usecs_per_second;
        if (micros < 0) {
            micros += k_usecs_per_second;
            --seconds;
        }
        const std::int64_t wall = seconds + k_pg_epoch_unix_seconds;  // local clock, Unix scale
        // The offsets a day before and after (at most one change in between, as the server
        // assumes too). The server's rule, which this follows: a local time that occurs twice
        // takes the offset after the change, one that a change skips the offset before it.
        const auto before = utc_offset_at(wall - 86400);
        const auto after = utc_offset_at(wall + 86400);
        if (!before || !after) {
            throw Error("timestamp out of range for the session time zone", "22008", "", "", true);
        }
        auto fits = [wall](std::int64_t offset) { return utc_offset_at(wall - offset) == offset; };
        const std::int64_t offset = fits(*after) ? *after : *before;
        return (wall - offset - k_pg_epoch_unix_seconds) * k_usecs_per_second + micros;
    };
    return options;
}

struct Target {
    std::string schema;
    std::string table;
};

// The table as the server resolves the name (search_path for an unqualified one), so that the
// writer sees exactly the relation COPY would.
Target resolve_table(Connection& connection, const QualifiedName& name) {
    const Result result = connection.execute_params(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass($1)",
        {name.quoted()});
    if (result.rows() == 0) {
        throw Error("relation " + name.quoted() + " does not exist", "42P01", "", "", true);
    }
    return {result.get(0, 0).value_or(""), result.get(0, 1).value_or("")};
}

struct BatchResult {
    std::uint64_t records = 0;
    std::uint64_t written = 0;
    std::uint64_t deduplicated = 0;
    std::uint64_t rejected = 0;
    std::uint64_t skipped = 0;  // committed, but the server left them as they were
};

// One Writer (one connection) and the bookkeeping that maps the writer's row numbers back to
// input records. Used by one thread at a time; the Writer calls back into it (on_reject), so it
// never moves.
class WriterWorker {
  public:
    WriterWorker(const LoadSettings& s, const ConnectionOptions& connection, const Target& target,
                 const Options& options, const TextValueOptions& text_options,
                 const std::vector<std::string>& sources, RejectSink& rejects, Progress& progress)
        : m_settings(s), m_text_options(text_options), m_sources(sources), m_rejects(rejects) {
        m_syntax = FieldSyntax::defaults(s.input_format);
        if (s.format.delimiter) {
            m_syntax.delimiter = (*s.format.delimiter)[0];
        }
        m_syntax.quote = s.quote;
        if (s.format.null_string) {
            m_syntax.null_string = *s.format.null_string;
        }
        WriterHooks hooks;
        hooks.on_reject = [this](const RejectedRow& row) { rejected_by_writer(row); };
        // After a failure the writer is destroyed with rows it never sent and says so; the
        // load's own error already tells what happened, so that warning is left out.
        // Info lines come only with --option verbose, which asked for them also under --quiet.
        hooks.on_log = [this, &progress](LogLevel level, const std::string& message) {
            const bool problem = level == LogLevel::warning || level == LogLevel::error;
            if (!m_discarding && !(problem && m_settings.quiet)) {
                progress.log_line("pg_ingest load: " + message);
            }
        };
        // Quoted: the resolved name is exact and may contain a dot (TableSchema::load).
        m_writer = std::make_unique<Writer>(connection, pg_ingest::quote_identifier(target.table),
                                            s.columns, options, hooks);
        mark_connected();
        m_relation = target.table;
        const TableSchema& schema = m_writer->schema();
        for (const auto& name : m_writer->columns()) {
            const auto index = schema.find_column(name, true);
            const ColumnInfo& info = schema.columns()[*index];
            m_names.push_back(name);
            m_types.push_back(*info.type);
            m_not_null.push_back(info.not_null);
            m_whats.push_back("column \"" + name + "\"");
        }
    }

    // Parses and writes every record of `batch`, then commits it (one flush).
    // Loads `batch` as one transaction; `committed` is called once it has committed, before its
    // rejects are written (a reject file that fails then does not hide the commit).
    void load(const Batch& batch, const std::function<void(const BatchResult&)>& committed) {
        m_batch = &batch;
        m_pending.clear();
        m_first_number = m_accepted + 1;
        m_rejected = 0;
        m_rejected_by_writer = 0;
        m_multiline = 0;
        m_batch_rejects.clear();
        std::size_t at = 0;
        Row row;
        // A line end the server's COPY would fail on fails the load, before any row is written.
        refuse_stray_line_ends(batch, m_sources, m_syntax.format);
        for (std::uint64_t index = 0; index < batch.records; ++index) {
            const std::size_t end = record_end(batch, at, index);
            const std::string_view record(batch.data.data() + at, end - at);
            at = end;
            row.clear();
            try {
                parse_record(record, row);
            } catch (const Error& error) {
                bad_record(index, record, error);
                continue;
            }
            m_pending.push_back({index, static_cast<std::size_t>(record.data() - batch.data.data()),
                                 record.size()});
            try {
                m_writer->write(std::move(row));
                ++m_accepted;
            } catch (const Error& error) {
                if (m_writer->metrics().rows_in > m_accepted) {
                    ++m_accepted;  // taken and then refused (a failed flush): numbered
                    throw locate(error, index);
                }
                m_pending.pop_back();
                bad_record(index, record, error);
            }
        }
        try {
            m_writer->flush();
        } catch (const Error& error) {
            throw locate(error, std::nullopt);
        }
        const WriterMetrics metrics = m_writer->metrics();
        BatchResult result;
        result.records = batch.records;
        // Every row the writer took is superseded, rejected or written. Not rows_out minus the
        // rejects: a key repeated under conflictmode strict is rejected without being sent.
        result.deduplicated = metrics.rows_deduplicated - m_last.rows_deduplicated;
        result.skipped = metrics.rows_skipped - m_last.rows_skipped;
        result.written = metrics.rows_in - m_last.rows_in - result.deduplicated -
                         m_rejected_by_writer - result.skipped;
        result.rejected = m_rejected;
        m_last = metrics;
        m_batch = nullptr;
        committed(result);
        // Committed: only now do its rejects belong in the reject file.
        for (const auto& reject : m_batch_rejects) {
            m_rejects.add(reject.origin, reject.sqlstate, reject.message, reject.raw_row);
        }
        m_batch_rejects.clear();
        m_rejects.flush();
    }

    ~WriterWorker() {
        m_discarding = true;
        m_writer.reset();
    }
    WriterWorker(const WriterWorker&) = delete;
    WriterWorker& operator=(const WriterWorker&) = delete;

    void close() { m_writer->close(); }

  private:
    struct PendingReject {
        RecordOrigin origin;
        std::string sqlstate;
        std::string message;
        std::string raw_row;
    };

    struct Pending {
        std::uint64_t index;  // record in the batch
        std::size_t offset;   // the record's bytes in batch.data
        std::size_t length;
    };

    // The end of record `index` (which starts at `at`): records are cut at the line ends the
    // reader found (all CRs in a batch from a CR source, else all LFs), so count them again,
    // stepping over those inside multi-line records. Called for index 0, 1, 2, ... in order.
    std::size_t record_end(const Batch& batch, std::size_t at, std::uint64_t index) {
        std::uint64_t inner = 0;
        if (m_multiline < batch.multiline.size() && batch.multiline[m_multiline].first == index) {
            inner = batch.multiline[m_multiline++].second.newlines;
        }
        const char eol = batch.first_eol == LineEnd::cr ? '\r' : '\n';
        std::size_t end = at;
        for (std::uint64_t newlines = 0; newlines <= inner; ++newlines) {
            const std::size_t found = batch.data.find(eol, end);
            end = found == std::string::npos ? batch.data.size() : found + 1;
        }
        return end;
    }

    void parse_record(std::string_view record, Row& row) {
        split_record(record, m_syntax, m_fields);
        if (m_fields.size() > m_names.size()) {
            throw Error("extra data after last expected column", "22P04", "", "", true);
        }
        if (m_fields.size() < m_names.size()) {
            throw Error("missing data for column \"" + m_names[m_fields.size()] + "\"", "22P04", "",
                        "", true);
        }
        for (std::size_t i = 0; i < m_fields.size(); ++i) {
            if (!m_fields[i]) {
                if (m_not_null[i]) {
                    throw Error("null value in column \"" + m_names[i] + "\" of relation \"" +
                                    m_relation + "\" violates not-null constraint",
                                "23502", "", "", true);
                }
                row.emplace_back();
            } else {
                row.push_back(
                    parse_text_value(*m_fields[i], m_types[i], m_whats[i], m_text_options));
            }
        }
    }

    std::string_view without_line_end(std::string_view record) const {
        return pg_ingest::cli::without_line_end(record, m_syntax.format);
    }

    void bad_record(std::uint64_t index, std::string_view record, const Error& error) {
        const RecordOrigin origin = m_batch->origin(m_sources, index);
        if (!m_settings.ignore_errors) {
            throw located(error, origin);
        }
        m_batch_rejects.push_back(
            {origin, error.sqlstate(), error.what(), std::string(without_line_end(record))});
        ++m_rejected;
    }

    // The writer names rows by its own count (Error::row_number(), and "row 17 of table ..."
    // in the text): name the input line instead.
    // The writer runs --conflict none as conflictmode strict: its messages say what the user
    // chose.
    std::string in_cli_terms(std::string message) const {
        const std::string library = "conflictmode strict";
        if (m_settings.conflict == "none") {
            for (auto at = message.find(library); at != std::string::npos;
                 at = message.find(library, at)) {
                message.replace(at, library.size(), "--conflict none");
            }
        }
        return message;
    }

    Error locate(const Error& error, std::optional<std::uint64_t> fallback_index) {
        const std::string message = in_cli_terms(error.what());
        const std::uint64_t number = error.row_number();
        if (number != 0 && number >= m_first_number && number - m_first_number < m_pending.size()) {
            // "row N of table T: message" -> "table T: message (file, line L)";
            // "row N: message" -> "message (file, line L)"
            std::string text = message;
            const std::string prefix = "row " + std::to_string(number);
            if (message.rfind(prefix, 0) == 0) {
                const auto of = message.find(" of table ");
                const auto colon = message.find(": ");
                if (of != std::string::npos && of < colon) {
                    text = message.substr(of + 4);
                } else if (colon != std::string::npos) {
                    text = message.substr(colon + 2);
                }
            }
            return located(Error(text, error.sqlstate(), error.detail(), error.hint(),
                                 error.connection_usable()),
                           m_batch->origin(m_sources, m_pending[number - m_first_number].index));
        }
        if (fallback_index) {
            return located(Error(message, error.sqlstate(), error.detail(), error.hint(),
                                 error.connection_usable()),
                           m_batch->origin(m_sources, *fallback_index));
        }
        return Error(message, error.sqlstate(), error.detail(), error.hint(),
                     error.connection_usable());
    }

    void rejected_by_writer(const RejectedRow& row) {
        ++m_rejected;
        ++m_rejected_by_writer;
        if (m_batch != nullptr && row.row_number >= m_first_number &&
            row.row_number - m_first_number < m_pending.size()) {
            const Pending& pending = m_pending[row.row_number - m_first_number];
            m_batch_rejects.push_back(
                {m_batch->origin(m_sources, pending.index), row.sqlstate, in_cli_terms(row.message),
                 std::string(without_line_end(
                     std::string_view(m_batch->data.data() + pending.offset, pending.length)))});
            return;
        }
        // Built apart: GCC 12 at -O3 takes the braced temporary's string for uninitialized.
        PendingReject reject;
        reject.origin = {m_sources.size() == 1 ? m_sources.front() : "", 0, 0};
        reject.sqlstate = row.sqlstate;
        reject.message = in_cli_terms(row.message);
        m_batch_rejects.push_back(std::move(reject));
    }

    const LoadSettings& m_settings;
    const TextValueOptions& m_text_options;
    const std::vector<std::string>& m_sources;
    RejectSink& m_rejects;
    FieldSyntax m_syntax;
    std::unique_ptr<Writer> m_writer;
    std::string m_relation;
    std::vector<std::string> m_names;
    std::vector<ColumnType> m_types;
    std::vector<bool> m_not_null;
    std::vector<std::string> m_whats;
    std::vector<Field> m_fields;

    const Batch* m_batch = nullptr;
    std::size_t m_multiline = 0;
    std::vector<Pending> m_pending;              // rows given to the writer since the last flush
    std::vector<PendingReject> m_batch_rejects;  // written once the batch has committed
    std::uint64_t m_first_number = 1;
    std::uint64_t m_accepted = 0;  // the writer's count of write() calls it took
    std::uint64_t m_rejected = 0;
    std::uint64_t m_rejected_by_writer = 0;
    WriterMetrics m_last;
    std::atomic<bool> m_discarding{false};
};

}  // namespace

void load_with_writer(const LoadSettings& s, const ConnectionOptions& connection,
                      InputReader& reader, Progress& progress, RejectSink& rejects,
                      LoadTotals& totals) {
    totals.typed = true;
    Target target;
    TextValueOptions text_options;
    {
        Connection session = Connection::connect(connection, s.connect_timeout);
        target = resolve_table(session, s.table);
        text_options = session_time_zone(session);
        // Interval text is read as the session that COPY would run in reads it: the sign of a
        // leading '-' differs under sql_standard.
        const auto style = session.execute("SELECT current_setting('IntervalStyle')").get(0, 0);
        if (style && *style == "sql_standard") {
            text_options.interval_style = pg_ingest::IntervalStyle::sql_standard;
        } else if (style && *style == "postgres_verbose") {
            text_options.interval_style = pg_ingest::IntervalStyle::postgres_verbose;
        } else if (style && *style == "iso_8601") {
            text_options.interval_style = pg_ingest::IntervalStyle::iso_8601;
        }
    }
    const std::uint64_t batch_rows = s.batch_size > 0 ? s.batch_size : s.options.batch_size;

    Options options = s.options;
    options.write_mode = s.mode == "insert" ? WriteMode::insert : WriteMode::upsert;
    options.conflict_mode = ConflictMode::strict;  // --conflict none: a repeated key fails
    if (s.conflict != "none") {
        options.set("conflictmode", s.conflict);
    }
    options.exception_mode = s.ignore_errors ? ExceptionMode::ignore : ExceptionMode::strict;
    options.conflict_columns = s.conflict_columns;
    options.update_columns = s.update_columns;
    options.target_schema = target.schema;
    options.case_sensitive = true;  // names below are exact: resolved or parsed as identifiers
    // One flush (one transaction) per input batch, sent by load() itself: the writer's own row
    // and byte limits and its timer stay out of the way (encoded rows may be larger than their
    // text, which the reader already bounds by batchbytes).
    // (Saturated: batchsize may be given as the largest size_t, and + 1 would wrap to 0.)
    options.batch_size = batch_rows >= std::numeric_limits<std::size_t>::max()
                             ? std::numeric_limits<std::size_t>::max()
                             : static_cast<std::size_t>(batch_rows) + 1;
    options.batch_bytes = std::numeric_limits<std::size_t>::max();
    options.batch_write_timeout = std::chrono::milliseconds(0);
    // No writer thread: a batch the writer keeps after its retries would be sent again by it
    // on its own, and could commit after the load failed and reported what had committed.
    options.background_flush = false;
    options.connection_max_active = 1;
    options.connect_timeout = s.connect_timeout;

    const auto& sources = reader.sources();
    // Open every writer before reading input, so that a bad table or column fails first.
    std::vector<std::unique_ptr<WriterWorker>> workers;
    for (std::size_t i = 0; i < s.parallel; ++i) {
        workers.push_back(std::make_unique<WriterWorker>(s, connection, target, options,
                                                         text_options, sources, rejects, progress));
    }
    std::mutex totals_mutex;
    auto account = [&](const BatchResult& result, const Batch& batch) {
        progress.add(result.records, batch.data.size());
        std::lock_guard<std::mutex> lock(totals_mutex);
        totals.committed.push_back(committed_range(batch));
        totals.rows_read += result.records;
        totals.written += result.written;
        totals.deduplicated += result.deduplicated;
        totals.skipped += result.skipped;
        totals.rejected += result.rejected;
        ++totals.committed_batches;
    };

    if (s.parallel == 1) {
        Batch batch;
        while (reader.next(batch, batch_rows, s.batch_bytes)) {
            if (interrupted()) {
                throw std::runtime_error(
                    "interrupted by a signal: no further batch was started; the batches before "
                    "committed");
            }
            workers.front()->load(batch,
                                  [&](const BatchResult& result) { account(result, batch); });
        }
        workers.front()->close();
        return;
    }

    BatchQueue queue(2 * s.parallel);
    std::exception_ptr failure;
    auto fail = [&](std::exception_ptr error) {
        std::lock_guard<std::mutex> lock(totals_mutex);
        if (!failure) {
            failure = error;
        }
    };
    std::vector<std::thread> threads;
    for (auto& worker : workers) {
        threads.emplace_back([&, w = worker.get()] {
            try {
                Batch batch;
                while (queue.pop(batch)) {
                    if (interrupted()) {
                        queue.close(true);  // not started: dropped (feed_and_join reports it)
                        return;
                    }
                    w->load(batch, [&](const BatchResult& result) { account(result, batch); });
                }
                w->close();
            } catch (...) {
                fail(std::current_exception());
                queue.close(true);
            }
        });
    }
    feed_and_join(reader, batch_rows, s.batch_bytes, queue, threads, fail, failure);
}

}  // namespace pg_ingest::cli
