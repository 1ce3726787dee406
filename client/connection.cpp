#include <pg_ingest/connection.hpp>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include <libpq-fe.h>

#include "connection_string.hpp"
#include "exec.hpp"
#include "libpq_support.hpp"
#include "notification.hpp"

namespace pg_ingest {

namespace {

using detail::connection_error;
using detail::trim_message;
using std::chrono::milliseconds;

// Timeouts at or past a year are saturated, so that now() + timeout cannot overflow the clock.
constexpr std::int64_t k_max_timeout_ms = 365LL * 24 * 3600 * 1000;

struct ConnDeleter {
    void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
struct ResultDeleter {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
struct FreememDeleter {
    void operator()(char* memory) const noexcept { PQfreemem(memory); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

enum class Wait { ready, timed_out, failed };

// Waits for the socket to become readable (or writable) until the deadline. Readiness includes
// error and hang-up conditions: libpq finds out what happened on its next call.
Wait wait_socket(int socket, bool for_write, Connection::Clock::time_point deadline) {
    while (true) {
        const auto now = Connection::Clock::now();
        if (now >= deadline) {
            return Wait::timed_out;
        }
        const auto remaining = std::chrono::ceil<milliseconds>(deadline - now).count();
        pollfd descriptor{socket, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
        const int ready =
            ::poll(&descriptor, 1, static_cast<int>(std::min<long long>(remaining, INT_MAX)));
        if (ready > 0) {
            return Wait::ready;
        }
        if (ready < 0 && errno != EINTR) {
            return Wait::failed;
        }
    }
}

long long elapsed_ms(Connection::Clock::time_point start) {
    return std::chrono::duration_cast<milliseconds>(Connection::Clock::now() - start).count();
}

// "server at "host", port 5432" for the host libpq is currently trying; never the password.
std::string describe_target(PGconn* conn) {
    const char* host = PQhost(conn);
    const char* port = PQport(conn);
    std::string target = "server at \"" + std::string(host != nullptr ? host : "") + "\"";
    if (port != nullptr && *port != '\0') {
        target += ", port " + std::string(port);
    }
    return target;
}

std::string null_terminated(std::string_view text, std::string_view what) {
    if (text.find('\0') != std::string_view::npos) {
        throw Error(std::string(what) + " contains a NUL byte");
    }
    return std::string(text);
}

}  // namespace

struct Connection::Impl {
    ConnPtr conn;
    NoticeHandler notice_handler;
    Clock::time_point deadline = Clock::time_point::max();

    // libpq calls this from inside its own functions; nothing may propagate out of it.
    static void receive_notice(void* self, const PGresult* notice) noexcept {
        auto* impl = static_cast<Impl*>(self);
        if (!impl->notice_handler) {
            return;
        }
        try {
            impl->notice_handler(trim_message(PQresultErrorMessage(notice)));
        } catch (...) {  // a throwing handler must not unwind through libpq's C frames
        }
    }

    PGconn* require_open() const {
        if (!conn) {
            throw connection_error(detail::k_connection_does_not_exist, "connection is closed");
        }
        if (PQstatus(conn.get()) != CONNECTION_OK) {
            throw connection_error(detail::k_connection_does_not_exist,
                                   "connection to the server was lost earlier");
        }
        return conn.get();
    }

    // Turns a finished libpq result into a Result or an Error.
    Result finish(ResultPtr result) {
        PGconn* c = conn.get();
        if (!result) {
            throw detail::error_from_result(nullptr, c);
        }
        switch (PQresultStatus(result.get())) {
            case PGRES_TUPLES_OK:
            case PGRES_COMMAND_OK:
            case PGRES_EMPTY_QUERY:
                return detail::result_from_pg(result.get());
            case PGRES_COPY_IN:
                // Abort the COPY server-side so the session returns to idle, then report misuse.
                PQputCopyEnd(c, "COPY FROM STDIN is not supported by Connection::execute");
                drain();
                throw Error("Connection::execute cannot run COPY ... FROM STDIN");
            case PGRES_COPY_OUT: {
                char* buffer = nullptr;
                while (PQgetCopyData(c, &buffer, 0) > 0) {
                    PQfreemem(buffer);
                }
                drain();
                throw Error("Connection::execute cannot run COPY ... TO STDOUT");
            }
            case PGRES_COPY_BOTH:
                conn.reset();  // a replication stream cannot be cancelled in-band
                throw Error("Connection::execute cannot run a COPY BOTH stream; connection closed",
                            "", "", "", false);
            default:
                throw detail::error_from_result(result.get(), c);
        }
    }

    void drain() noexcept {
        while (PGresult* rest = PQgetResult(conn.get())) {
            PQclear(rest);
        }
    }
};

Connection::Impl& Connection::checked_impl() const {
    if (!m_impl) {
        throw connection_error(detail::k_connection_does_not_exist, "connection is closed");
    }
    return *m_impl;
}

Connection::Connection(std::unique_ptr<Impl> impl) noexcept : m_impl(std::move(impl)) {}
Connection::Connection(Connection&& other) noexcept = default;
Connection& Connection::operator=(Connection&& other) noexcept = default;
Connection::~Connection() = default;

Connection Connection::connect(const ConnectionOptions& options, milliseconds timeout) {
    if (timeout <= milliseconds::zero()) {
        throw std::invalid_argument("pg_ingest::Connection::connect: timeout must be positive");
    }
    // Saturated: "no practical limit" (milliseconds::max()) must not overflow the clock.
    return connect(options, timeout >= milliseconds(k_max_timeout_ms) ? Clock::time_point::max()
                                                                      : Clock::now() + timeout);
}

namespace {

bool sqlstate_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

// A failed connection attempt as the server classified it. libpq keeps the server's startup
// error only as text, so connecting runs with verbose errors, which put the SQLSTATE after the
// severity ("FATAL:  28P01: password authentication failed ..."): the last such code is the
// error's, and the text is shown without it and without the LOCATION lines. A wrong password,
// an unknown database or role is then final (not retryable); a server that was never reached,
// or that said it is starting up or full, stays transient.
Error connect_failure(PGconn* conn) {
    std::string sqlstate(detail::k_sqlclient_unable_to_establish);
    std::string message;
    std::istringstream lines(PQerrorMessage(conn));
    for (std::string line; std::getline(lines, line);) {
        const auto at = line.find(":  ");
        if (at == std::string::npos) {
            message += line + "\n";
            continue;
        }
        const auto code = at + 3;
        const bool has_code =
            line.size() >= code + 7 && line.compare(code + 5, 2, ": ") == 0 &&
            std::all_of(line.begin() + static_cast<std::ptrdiff_t>(code),
                        line.begin() + static_cast<std::ptrdiff_t>(code + 5), sqlstate_char);
        if (has_code) {
            sqlstate = line.substr(code, 5);
            message += line.substr(0, code) + line.substr(code + 7) + "\n";
        } else if (line.find(".c:") == std::string::npos) {  // "LOCATION:  func, file.c:N"
            message += line + "\n";
        }
    }
    // libpq gave up before asking the server: no password to send.
    if (PQconnectionNeedsPassword(conn)) {
        sqlstate = "28P01";
    }
    // The client's own SSL policy refused every server it reached (sslmode require or
    // verify-*: no SSL there, or a certificate that does not verify). Final, as a wrong
    // password is: 28000 (not retryable), unless some host was not reached at all and may be
    // the one that would do.
    const auto has = [&message](const char* text) {
        return message.find(text) != std::string::npos;
    };
    if (sqlstate == detail::k_sqlclient_unable_to_establish &&
        (has("SSL was required") || has("certificate verify failed") ||
         has("does not match host name") || has("root certificate file")) &&
        !has("Connection refused") && !has("could not connect") && !has("timeout expired") &&
        !has("could not translate host name") && !has("No route to host")) {
        sqlstate = "28000";
    }
    return connection_error(sqlstate, trim_message(message.c_str()));
}

}  // namespace

namespace {

// One connection attempt with `overrides` replacing keywords of `options`, abandoned at
// `deadline`. Throws Error (connect_failure or 08001).
ConnPtr connect_attempt(const ConnectionOptions& options,
                        const std::vector<std::pair<std::string, std::string>>& overrides,
                        Connection::Clock::time_point deadline) {
    const auto start = Connection::Clock::now();
    std::vector<const char*> keywords;
    std::vector<const char*> values;
    auto add = [&](const std::string& keyword, const std::string& value) {
        for (const auto& [k, v] : overrides) {
            if (k == keyword) {
                return;  // added below
            }
        }
        keywords.push_back(keyword.c_str());
        values.push_back(value.c_str());
    };
    for (const auto& [keyword, value] : options.parameters()) {
        if (keyword != "client_encoding") {
            add(keyword, value);
        }
    }
    for (const auto& [keyword, value] : overrides) {
        keywords.push_back(keyword.c_str());
        values.push_back(value.c_str());
    }
    // Text goes out and comes back as UTF-8 (values are checked as UTF-8, binary text is
    // converted from the client encoding): never PGCLIENTENCODING's or the server's choice.
    keywords.push_back("client_encoding");
    values.push_back("UTF8");
    keywords.push_back(nullptr);
    values.push_back(nullptr);

    // expand_dbname = 0: a dbname is a name, never a nested connection string.
    ConnPtr conn(PQconnectStartParams(keywords.data(), values.data(), 0));
    if (!conn) {
        throw std::bad_alloc();
    }
    PQsetErrorVerbosity(conn.get(), PQERRORS_VERBOSE);  // for connect_failure(); reset below
    auto failure = [](const std::string& why) {
        return connection_error(detail::k_sqlclient_unable_to_establish, why);
    };
    // Per libpq's protocol, start as if PQconnectPoll had asked to wait for writability.
    PostgresPollingStatusType status = PGRES_POLLING_WRITING;
    while (status != PGRES_POLLING_OK) {
        if (status == PGRES_POLLING_FAILED || PQstatus(conn.get()) == CONNECTION_BAD) {
            throw connect_failure(conn.get());
        }
        if (status == PGRES_POLLING_READING || status == PGRES_POLLING_WRITING) {
            const int socket = PQsocket(conn.get());
            if (socket < 0) {
                throw failure("could not connect: libpq has no socket");
            }
            switch (wait_socket(socket, status == PGRES_POLLING_WRITING, deadline)) {
                case Wait::ready:
                    break;
                case Wait::timed_out:
                    throw failure("timed out after " + std::to_string(elapsed_ms(start)) +
                                  " ms connecting to " + describe_target(conn.get()));
                case Wait::failed: {
                    const int error = errno;
                    throw failure("could not wait for the connection: " +
                                  std::string(std::strerror(error)));
                }
            }
        }
        status = PQconnectPoll(conn.get());
    }
    PQsetErrorVerbosity(conn.get(), PQERRORS_DEFAULT);
    return conn;
}

// connect_timeout in ms (libpq: whole seconds, at least 2; 0 or less is no limit), if set.
std::optional<milliseconds> connect_timeout_of(const ConnectionOptions& options) {
    const auto text = options.get("connect_timeout");
    if (!text || text->empty()) {
        return std::nullopt;
    }
    char* end = nullptr;
    const long seconds = std::strtol(text->c_str(), &end, 10);
    if (end == text->c_str() || seconds <= 0) {
        return std::nullopt;
    }
    return milliseconds(std::max<long>(seconds, 2) * 1000);
}

}  // namespace

Connection Connection::connect(const ConnectionOptions& options, Clock::time_point deadline) {
    // libpq applies connect_timeout to each host only when it blocks; this path does not block,
    // so the hosts are tried here one at a time, each bounded by it (a first host that accepts
    // and never answers must not use up the whole deadline). Without a host list in the options
    // (PGHOST, a service file) or with prefer-standby (two passes over the list), libpq walks
    // the list itself and connect_timeout bounds the whole attempt.
    const auto per_host = connect_timeout_of(options);
    const auto bound = [&](Clock::time_point attempt_start) {
        return per_host && deadline - attempt_start > *per_host ? attempt_start + *per_host
                                                                : deadline;
    };
    std::vector<std::vector<std::pair<std::string, std::string>>> attempts;
    const auto host = options.get("host");
    const auto hostaddr = options.get("hostaddr");
    const auto attrs = options.get("target_session_attrs");
    if (per_host && (host || hostaddr) && !(attrs && *attrs == "prefer-standby")) {
        using List = std::vector<std::string_view>;  // views into the optionals above
        const auto port = options.get("port");
        const List hosts = host ? detail::split(*host, ',') : List();
        const List addrs = hostaddr ? detail::split(*hostaddr, ',') : List();
        const List ports = port ? detail::split(*port, ',') : List();
        const std::size_t n = std::max(hosts.size(), addrs.size());
        // Lists of other lengths are libpq's to refuse, with its own message.
        if (n > 1 && (hosts.empty() || hosts.size() == n) && (addrs.empty() || addrs.size() == n) &&
            (ports.size() <= 1 || ports.size() == n)) {
            for (std::size_t i = 0; i < n; ++i) {
                std::vector<std::pair<std::string, std::string>> one;
                if (!hosts.empty()) {
                    one.emplace_back("host", std::string(hosts[i]));
                }
                if (!addrs.empty()) {
                    one.emplace_back("hostaddr", std::string(addrs[i]));
                }
                if (ports.size() == n) {
                    one.emplace_back("port", std::string(ports[i]));
                }
                attempts.push_back(std::move(one));
            }
        }
    }
    ConnPtr conn;
    if (attempts.empty()) {
        conn = connect_attempt(options, {}, bound(Clock::now()));
    } else {
        std::string failures;
        for (std::size_t i = 0; i < attempts.size() && !conn; ++i) {
            try {
                conn = connect_attempt(options, attempts[i], bound(Clock::now()));
            } catch (const Error& error) {
                // As libpq: a server that refused the session (password, database, role) ends
                // the attempt; an unreachable or silent host, or one still starting up (57P03,
                // a standby first in the list), passes on to the next one.
                if (error.sqlstate() != detail::k_sqlclient_unable_to_establish &&
                    error.sqlstate() != "57P03") {
                    throw;
                }
                failures += std::string(failures.empty() ? "" : "; ") + error.what();
                if (Clock::now() >= deadline) {
                    break;
                }
            }
        }
        if (!conn) {
            throw connection_error(detail::k_sqlclient_unable_to_establish, failures);
        }
    }
    auto impl = std::make_unique<Impl>();
    impl->conn = std::move(conn);
    PQsetNoticeReceiver(impl->conn.get(), &Impl::receive_notice, impl.get());
    return Connection(std::move(impl));
}

Result Connection::execute(std::string_view sql) {
    const std::string text = null_terminated(sql, "SQL text");
    PGconn* conn = checked_impl().require_open();
    if (m_impl->deadline != Clock::time_point::max()) {
        return detail::exec_until(*this, text, nullptr, m_impl->deadline);
    }
    return checked_impl().finish(ResultPtr(PQexec(conn, text.c_str())));
}

Result Connection::execute_params(std::string_view sql, const Parameters& params) {
    const std::string text = null_terminated(sql, "SQL text");
    if (params.size() > 65535) {
        throw Error("too many parameters: the protocol allows at most 65535");
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (params[i] && params[i]->find('\0') != std::string::npos) {
            throw Error("parameter $" + std::to_string(i + 1) + " contains a NUL byte");
        }
        values.push_back(params[i] ? params[i]->c_str() : nullptr);
    }
    PGconn* conn = checked_impl().require_open();
    if (m_impl->deadline != Clock::time_point::max()) {
        return detail::exec_text_until(*this, text, values, m_impl->deadline);
    }
    return checked_impl().finish(
        ResultPtr(PQexecParams(conn, text.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0)));
}

void Connection::set_deadline(Clock::time_point deadline) noexcept {
    if (m_impl) {
        m_impl->deadline = deadline;
    }
}

Connection::Clock::time_point Connection::deadline() const noexcept {
    return m_impl ? m_impl->deadline : Clock::time_point::max();
}

bool Connection::ping(milliseconds timeout) noexcept {
    return round_trip("", timeout);
}

bool Connection::reset_session(milliseconds timeout) noexcept {
    if (!round_trip("DISCARD ALL", timeout)) {
        return false;
    }
    // DISCARD ALL ends the LISTENs, but notifications libpq had already read (along with any
    // earlier answer, or with this one) wait in the connection for whoever calls PQnotifies.
    detail::drop_notifications(*this);
    return true;
}

bool Connection::round_trip(const char* sql, milliseconds timeout) noexcept {
    if (!is_open() || timeout <= milliseconds::zero()) {
        return false;
    }
    PGconn* conn = m_impl->conn.get();
    const auto deadline = timeout >= milliseconds(k_max_timeout_ms)
                              ? Clock::now() + milliseconds(k_max_timeout_ms)
                              : Clock::now() + timeout;
    if (PQsendQuery(conn, sql) == 0) {
        return false;
    }
    // An empty query answers PGRES_EMPTY_QUERY, a statement PGRES_COMMAND_OK; an error fails.
    const ExecStatusType expected = *sql == '\0' ? PGRES_EMPTY_QUERY : PGRES_COMMAND_OK;
    bool answered = false;
    bool failed = false;
    while (true) {
        if (PQconsumeInput(conn) == 0) {
            close();
            return false;
        }
        while (PQisBusy(conn) == 0) {
            PGresult* result = PQgetResult(conn);
            if (result == nullptr) {
                return answered && !failed && PQstatus(conn) == CONNECTION_OK;
            }
            if (PQresultStatus(result) == expected) {
                answered = true;
            } else {
                failed = true;
            }
            PQclear(result);
        }
        if (wait_socket(PQsocket(conn), false, deadline) != Wait::ready) {
            close();  // a query is in flight: the session cannot be reused
            return false;
        }
    }
}

bool Connection::is_open() const noexcept {
    return m_impl && m_impl->conn && PQstatus(m_impl->conn.get()) == CONNECTION_OK;
}

void Connection::close() noexcept {
    if (m_impl) {
        m_impl->conn.reset();
    }
}

namespace {

// Sends `cancel` (a PGcancel) and waits at most `bound` for it to be delivered; true when it
// was. PQcancel blocks (it connects and waits for the server's reply) with no timeout of its
// own in libpq 15: a thread bounds the wait, and holds `cancel` until it is done.
bool send_cancel(const std::shared_ptr<void>& cancel, milliseconds bound) noexcept {
    // Against a host that does not answer, each cancel thread waits for the OS to give up on
    // it; a few in flight at once are enough, so later ones are skipped meanwhile.
    static std::atomic<int> in_flight{0};
    if (!cancel || bound <= milliseconds::zero() || in_flight.load() >= 4) {
        return false;
    }
    try {
        auto delivered = std::make_shared<std::promise<bool>>();
        std::future<bool> done = delivered->get_future();
        ++in_flight;
        try {
            std::thread([cancel, delivered] {
                auto* request = static_cast<PGcancel*>(cancel.get());
                char message[256];
                const int sent = PQcancel(request, message, sizeof message);
                --in_flight;  // the bound is on cancels waiting for a host, not the retry
                delivered->set_value(sent != 0);
                // A cancel that reaches the backend before it starts the statement (still
                // reading it, on a busy server) is ignored, and the statement then runs on:
                // blocked on a lock, it would wait (and queue others) until the lock is
                // free. A second cancel a moment later stops it; one to a backend that has
                // ended since is ignored by the server (the key names that backend only).
                if (sent) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(300));
                    PQcancel(request, message, sizeof message);
                }
            }).detach();
        } catch (...) {
            --in_flight;
            throw;
        }
        return done.wait_for(bound) == std::future_status::ready && done.get();
    } catch (...) {  // no thread: nothing sent
        return false;
    }
}

std::shared_ptr<void> make_cancel(PGconn* conn) {
    PGcancel* cancel = PQgetCancel(conn);
    if (cancel == nullptr) {
        return nullptr;
    }
    return std::shared_ptr<void>(cancel, [](void* p) { PQfreeCancel(static_cast<PGcancel*>(p)); });
}

}  // namespace

bool CancelToken::cancel(milliseconds bound) const noexcept {
    return send_cancel(m_cancel, bound);
}

CancelToken Connection::cancel_token() const {
    Impl& impl = checked_impl();
    if (!impl.conn || PQstatus(impl.conn.get()) != CONNECTION_OK) {
        throw connection_error(detail::k_connection_does_not_exist, "connection is closed");
    }
    CancelToken token;
    token.m_cancel = make_cancel(impl.conn.get());
    return token;
}

void Connection::cancel_and_close(milliseconds bound) noexcept {
    if (!m_impl || !m_impl->conn) {
        return;
    }
    PGconn* conn = m_impl->conn.get();
    if (bound > milliseconds::zero() && PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) == PQTRANS_ACTIVE) {
        try {
            (void)send_cancel(make_cancel(conn), bound);
        } catch (...) {  // no memory for the token: close without the cancel
        }
    }
    close();
}

int Connection::server_version() const noexcept {
    return is_open() ? PQserverVersion(m_impl->conn.get()) : 0;
}

int Connection::backend_pid() const noexcept {
    return is_open() ? PQbackendPID(m_impl->conn.get()) : 0;
}

std::string Connection::quote_identifier(std::string_view identifier) const {
    PGconn* conn = checked_impl().require_open();
    std::unique_ptr<char, FreememDeleter> quoted(
        PQescapeIdentifier(conn, identifier.data(), identifier.size()));
    if (!quoted) {
        throw Error(trim_message(PQerrorMessage(conn)), "22021", "", "", true);
    }
    return quoted.get();
}

std::string Connection::quote_literal(std::string_view literal) const {
    PGconn* conn = checked_impl().require_open();
    std::unique_ptr<char, FreememDeleter> quoted(
        PQescapeLiteral(conn, literal.data(), literal.size()));
    if (!quoted) {
        throw Error(trim_message(PQerrorMessage(conn)), "22021", "", "", true);
    }
    return quoted.get();
}

void Connection::set_notice_handler(NoticeHandler handler) {
    checked_impl().notice_handler = std::move(handler);
}

void* Connection::native_handle() const noexcept {
    return m_impl ? m_impl->conn.get() : nullptr;
}

}  // namespace pg_ingest
