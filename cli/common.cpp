#include "common.hpp"

#include <strings.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <pg_ingest/error.hpp>
#include <pg_ingest/qualified_name.hpp>

namespace pg_ingest::cli {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
volatile std::sig_atomic_t g_connected = 0;
// Written to by the signal handler (write() is async-signal-safe): wakes InterruptCanceller's
// thread at once, so that its cancel requests go out before a second signal ends the process.
int g_wake_pipe[2] = {-1, -1};

extern "C" void on_interrupt(int signal_number) {
    g_interrupted = 1;
    if (g_wake_pipe[1] >= 0) {
        const int saved = errno;
        (void)!::write(g_wake_pipe[1], "!", 1);
        errno = saved;
    }
    // Still connecting: nothing is in flight and nothing was sent, and a connection attempt
    // cannot be interrupted; the default action (SA_RESETHAND restored it) ends the process
    // as soon as the handler returns.
    if (g_connected == 0) {
        ::raise(signal_number);
    }
}

}  // namespace

void scrub_password(char* text) {
    const std::size_t n = std::strlen(text);
    const auto blank = [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to && i < n; ++i) {
            text[i] = 'x';
        }
    };
    const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    // user:password@host: a URI's, or one whose scheme has a typo ("postgresql:/u:p@h", which
    // no parser reads as a URI). The part after the first ':' of the '@''s word (from the last
    // '/' or blank before it) is blanked.
    for (std::size_t at = 0; at < n; ++at) {
        if (text[at] != '@') {
            continue;
        }
        std::size_t start = at;
        while (start > 0 && text[start - 1] != '/' && !space(text[start - 1])) {
            --start;
        }
        for (std::size_t i = start; i < at; ++i) {
            if (text[i] == ':') {
                blank(i + 1, at);
                break;
            }
        }
    }
    // password=value and sslpassword=value, in key=value form (value plain or single-quoted)
    // or a URI's query.
    for (std::size_t i = 0; i + 8 <= n; ++i) {
        if (strncasecmp(text + i, "password", 8) != 0) {
            continue;
        }
        std::size_t name = i;
        if (name >= 3 && strncasecmp(text + name - 3, "ssl", 3) == 0) {
            name -= 3;
        }
        if (name > 0 && (std::isalnum(static_cast<unsigned char>(text[name - 1])) != 0 ||
                         text[name - 1] == '_')) {
            continue;
        }
        std::size_t j = i + 8;
        while (j < n && space(text[j])) {
            ++j;
        }
        if (j >= n || text[j] != '=') {
            continue;
        }
        ++j;
        while (j < n && space(text[j])) {
            ++j;
        }
        std::size_t end = j;
        if (j < n && text[j] == '\'') {
            end = j + 1;
            while (end < n && text[end] != '\'') {
                end += text[end] == '\\' ? 2 : 1;
            }
            blank(j + 1, end);
        } else {
            while (end < n && !space(text[end]) && text[end] != '&') {
                ++end;
            }
            blank(j, end);
        }
        i = end;
    }
}

std::vector<OptionSpec> with_common_options(std::vector<OptionSpec> specs) {
    specs.push_back({"dsn", "DSN",
                     "connection: key=value string, postgresql:// URI or jdbc:postgresql:// URL "
                     "(default: PGHOST, PGPORT, PGUSER, PGDATABASE, ...)"});
    specs.push_back({"connect-timeout", "SECONDS", "give up connecting after this long (30)"});
    specs.push_back({"quiet", "", "no progress and no summary on stderr"});
    specs.push_back({"help", "", "show this help"});
    return specs;
}

ConnectionOptions connection_options(const ParsedArgs& args) {
    const auto dsn = args.get("dsn");
    return dsn ? ConnectionOptions(*dsn) : ConnectionOptions();
}

Connection connect(const ConnectionOptions& options, const ParsedArgs& args) {
    const double seconds = args.get_seconds("connect-timeout").value_or(30.0);
    if (seconds <= 0) {
        throw UsageError("--connect-timeout must be positive");
    }
    return Connection::connect(options,
                               std::chrono::milliseconds(static_cast<long long>(seconds * 1000)));
}

Connection connect(const ParsedArgs& args) {
    return connect(connection_options(args), args);
}

void print_error(const std::string& command, const std::exception& error) {
    // The library's messages may start with the command's own name ("export: ..."): once.
    std::string message = error.what();
    if (message.rfind(command + ": ", 0) == 0) {
        message.erase(0, command.size() + 2);
    }
    std::fprintf(stderr, "pg_ingest %s: %s\n", command.c_str(), message.c_str());
    if (const auto* pg = dynamic_cast<const Error*>(&error)) {
        if (!pg->detail().empty()) {
            std::fprintf(stderr, "DETAIL: %s\n", pg->detail().c_str());
        }
        if (!pg->hint().empty()) {
            std::fprintf(stderr, "HINT: %s\n", pg->hint().c_str());
        }
    } else if (dynamic_cast<const UsageError*>(&error) != nullptr) {
        std::fprintf(stderr, "Try 'pg_ingest %s --help'.\n", command.c_str());
    }
    std::fflush(stderr);
}

std::string parse_identifier(const std::string& text, const std::string& what,
                             bool case_sensitive) {
    QualifiedName name;
    try {
        name = QualifiedName::parse(text, case_sensitive);
    } catch (const Error& error) {
        throw UsageError(what + ": invalid column name '" + text + "'");
    }
    if (!name.schema.empty()) {
        throw UsageError(what + ": '" + text + "' is not a column name");
    }
    return name.name;
}

std::vector<std::string> parse_identifiers(const std::string& text, const std::string& what,
                                           bool case_sensitive) {
    std::vector<std::string> names;
    for (const auto& item : split_list(text, what)) {
        names.push_back(parse_identifier(item, what, case_sensitive));
    }
    return names;
}

void print_help(const std::string& usage, const std::vector<OptionSpec>& specs,
                const std::string& examples) {
    std::printf("%s\nOptions:\n%s\nExamples:\n%s", usage.c_str(), format_options(specs).c_str(),
                examples.c_str());
}

bool interrupted() noexcept {
    return g_interrupted != 0;
}

std::string printable(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (u < 0x20 || u == 0x7f) {
                    static const char digits[] = "0123456789abcdef";
                    out += "\\x";
                    out += digits[u >> 4];
                    out += digits[u & 15];
                } else {
                    out += c;
                }
        }
    }
    return out;
}

void mark_connected() noexcept {
    g_connected = 1;
}

InterruptCanceller::InterruptCanceller() : m_thread([this] { run(); }) {}

InterruptCanceller::~InterruptCanceller() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stopping = true;
    }
    m_thread.join();
}

int InterruptCanceller::add(CancelToken token) {
    std::lock_guard<std::mutex> lock(m_mutex);
    const int key = m_next++;
    if (m_fired) {
        token.cancel();  // registered after the signal: cancelled at once
    }
    m_tokens.emplace(key, std::move(token));
    return key;
}

void InterruptCanceller::remove(int key) noexcept {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_tokens.erase(key);
}

void InterruptCanceller::run() {
    // Woken by the signal handler's byte in the pipe (left there: the flag is what counts), or
    // every tenth of a second to see whether it should stop.
    while (true) {
        if (interrupted()) {
            break;
        }
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            if (m_stopping) {
                return;
            }
        }
        if (g_wake_pipe[0] >= 0) {
            pollfd wake{g_wake_pipe[0], POLLIN, 0};
            (void)::poll(&wake, 1, 100);
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    std::lock_guard<std::mutex> lock(m_mutex);
    m_fired = true;
    for (const auto& [key, token] : m_tokens) {
        token.cancel();
    }
}

void install_interrupt_handler() {
    if (g_wake_pipe[0] < 0 && ::pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        g_wake_pipe[0] = g_wake_pipe[1] = -1;  // without it the canceller polls
    }
    // SA_RESETHAND: a second Ctrl-C still stops a run stuck in a long statement. SA_RESTART:
    // reads and waits carry on rather than fail with EINTR; the flag is checked between units.
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND | SA_RESTART;
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
}

}  // namespace pg_ingest::cli
