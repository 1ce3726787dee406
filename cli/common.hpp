// What every subcommand shares: exit codes, connection options, error reporting.
#pragma once

#include <chrono>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pg_ingest/connection.hpp>

#include "args.hpp"

namespace pg_ingest::cli {

// 0 success, 2 success with rejected rows, 1 failure (including bad arguments), 3 load --async
// stopped waiting (--timeout, a signal) while its jobs go on loading.
constexpr int k_exit_ok = 0;
constexpr int k_exit_failure = 1;
constexpr int k_exit_rejected = 2;
constexpr int k_exit_still_running = 3;

// Combines exit codes: failure beats rejected rows beats success.
inline int worse(int a, int b) {
    if (a == k_exit_failure || b == k_exit_failure) {
        return k_exit_failure;
    }
    return a == k_exit_rejected || b == k_exit_rejected ? k_exit_rejected : k_exit_ok;
}

// Overwrites, in place with 'x', the passwords in a connection string (password=... of a
// key=value string or a URI's query, and a URI's user:password@): the process's own argument
// strings, which ps and /proc/PID/cmdline show to every user of the machine. The length stays.
void scrub_password(char* text);

// --dsn, --connect-timeout, --quiet, --help: added to every subcommand's own options.
std::vector<OptionSpec> with_common_options(std::vector<OptionSpec> specs);

// From --dsn (key=value, postgresql:// URI or jdbc:postgresql:// URL); without it, libpq's
// defaults and PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD/... apply. Throws pg_ingest::Error.
ConnectionOptions connection_options(const ParsedArgs& args);
// Connects within --connect-timeout seconds (default 30).
Connection connect(const ParsedArgs& args);
Connection connect(const ConnectionOptions& options, const ParsedArgs& args);

// Prints "pg_ingest <command>: <message>" (plus DETAIL/HINT of a pg_ingest::Error) to stderr.
void print_error(const std::string& command, const std::exception& error);

// Runs a subcommand body, turning exceptions into messages and exit code 1.
template <typename Body>
int guarded(const std::string& command, Body&& body) {
    try {
        return body();
    } catch (const std::exception& error) {
        print_error(command, error);
        return k_exit_failure;
    }
}

// A column name as typed: unquoted folded to lower case (unless case_sensitive), "Quoted" kept.
// Throws UsageError naming `what`.
std::string parse_identifier(const std::string& text, const std::string& what,
                             bool case_sensitive = false);
// A comma-separated list of column names (see parse_identifier).
std::vector<std::string> parse_identifiers(const std::string& text, const std::string& what,
                                           bool case_sensitive = false);

// Help text: usage, options, examples; printed to stdout.
void print_help(const std::string& usage, const std::vector<OptionSpec>& specs,
                const std::string& examples);

// True once SIGINT/SIGTERM arrived (after install_interrupt_handler()). The first signal only
// sets the flag; a second one has its default effect (ends the process at once).
bool interrupted() noexcept;
// `text` safe to print on one line of a terminal: control characters (ESC of an ANSI sequence,
// CR, LF, TAB, ...) and backslashes as C escapes (\x1b, \r, \n, \t, \\).
std::string printable(const std::string& text);
void install_interrupt_handler();
// Called once the load's first connection is open: before it, a signal ends the process at
// once (a connection attempt, which may wait for --connect-timeout, cannot be interrupted,
// and nothing has been sent).
void mark_connected() noexcept;

// While it lives, sends every registered session a cancel request once a signal has arrived
// (interrupted()), from a thread of its own: a statement that waits on a lock or runs long
// (a COPY ON CONFLICT applying its rows at the end of input) is ended then, rather than when it
// would have finished; the thread it blocked gets the server's Error 57014. Thread-safe.
class InterruptCanceller {
  public:
    InterruptCanceller();
    ~InterruptCanceller();
    InterruptCanceller(const InterruptCanceller&) = delete;
    InterruptCanceller& operator=(const InterruptCanceller&) = delete;
    // Registers a session (an empty token is ignored); returns the key for remove().
    int add(CancelToken token);
    void remove(int key) noexcept;

  private:
    void run();
    std::mutex m_mutex;
    std::map<int, CancelToken> m_tokens;
    int m_next = 0;
    bool m_stopping = false;
    bool m_fired = false;
    std::thread m_thread;
};

}  // namespace pg_ingest::cli
