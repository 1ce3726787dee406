// pg_ingest export: a table to CSV (or text), in parallel over key ranges of one snapshot.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <streambuf>
#include <vector>

#include <pg_ingest/exporter.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "progress.hpp"

namespace pg_ingest::cli {

namespace {

// The partial output file being written, for the signal handler: Ctrl-C or SIGTERM must not
// leave it behind (it may be gigabytes). Set before the file is created, cleared once renamed.
char g_partial[PATH_MAX + 64] = "";

extern "C" void remove_partial_and_die(int signo) {
    if (g_partial[0] != '\0') {
        ::unlink(g_partial);  // async-signal-safe
    }
    ::signal(signo, SIG_DFL);
    ::raise(signo);
}

// `path` does not exist, or is a regular file (also through symbolic links).
bool is_regular_or_new(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        return true;
    }
    return S_ISREG(info.st_mode);
}

// The process's umask (read by setting it, and set back at once).
mode_t current_umask() {
    const mode_t mask = ::umask(022);
    ::umask(mask);
    return mask;
}

// An output stream buffer over a file descriptor it owns: the temporary file, written through
// the descriptor it was made with. error() says why a write or the close failed.
class FdOutput : public std::streambuf {
  public:
    explicit FdOutput(int fd) : m_fd(fd), m_buffer(64 * 1024) {
        setp(m_buffer.data(), m_buffer.data() + m_buffer.size());
    }
    ~FdOutput() override { (void)close(); }
    FdOutput(const FdOutput&) = delete;
    FdOutput& operator=(const FdOutput&) = delete;

    // Writes what is buffered and closes the descriptor; false (see error()) when either failed.
    bool close() {
        if (m_fd < 0) {
            return m_errno == 0;
        }
        const bool flushed = drain();
        if (::close(m_fd) != 0 && m_errno == 0) {
            m_errno = errno;
        }
        m_fd = -1;
        return flushed && m_errno == 0;
    }
    std::string error() const {
        return m_errno != 0 ? std::strerror(m_errno) : "the output was not written";
    }

  protected:
    int_type overflow(int_type c) override {
        if (!drain()) {
            return traits_type::eof();
        }
        if (!traits_type::eq_int_type(c, traits_type::eof())) {
            *pptr() = traits_type::to_char_type(c);
            pbump(1);
        }
        return traits_type::not_eof(c);
    }
    int sync() override { return drain() ? 0 : -1; }

  private:
    bool drain() {
        const char* at = pbase();
        while (at < pptr()) {
            const ssize_t n = ::write(m_fd, at, static_cast<std::size_t>(pptr() - at));
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                m_errno = errno;
                return false;
            }
            at += n;
        }
        setp(m_buffer.data(), m_buffer.data() + m_buffer.size());
        return m_fd >= 0;
    }

    int m_fd;
    int m_errno = 0;
    std::vector<char> m_buffer;
};

// The file a symbolic link names (the path itself when it is none, or names nothing yet).
std::string resolved(const std::string& path) {
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0 || !S_ISLNK(info.st_mode)) {
        return path;
    }
    char buffer[PATH_MAX];
    if (::realpath(path.c_str(), buffer) != nullptr) {
        return std::string(buffer);
    }
    // A link to a file not there yet: the file it names, relative to the link's directory.
    const ssize_t length = ::readlink(path.c_str(), buffer, sizeof(buffer) - 1);
    if (length <= 0) {
        return path;
    }
    const std::string target(buffer, static_cast<std::size_t>(length));
    const std::size_t slash = path.rfind('/');
    if (target[0] == '/' || slash == std::string::npos) {
        return target;
    }
    return path.substr(0, slash + 1) + target;
}

const char* const k_usage =
    "Usage: pg_ingest export --table TABLE [--split-key COLUMN --parallel N] [--where SQL]\n"
    "                        [--columns a,b,...] [--format csv|text] [--header] [--output FILE]\n"
    "\n"
    "Exports the rows of a table as CSV (or PostgreSQL text format) to a file or stdout.\n"
    "With --split-key, the integer key's [min, max] is cut into N ranges exported over N\n"
    "connections at once; all connections read one snapshot, so every row is exported exactly\n"
    "once even while others write. Rows are never split or interleaved; their order is not\n"
    "defined. An --output file is written under a temporary name and renamed when complete.\n";

const char* const k_examples =
    "  pg_ingest export --table sales.orders --output orders.csv --header\n"
    "  pg_ingest export --table orders --split-key order_id --parallel 8 \\\n"
    "      --where \"created_at >= '2024-01-01'\" --columns order_id,status > recent.csv\n";

}  // namespace

int run_export(const std::vector<std::string>& argv) {
    return guarded("export", [&] {
        const auto specs = with_common_options({
            {"table", "TABLE",
             "table to export (schema.table ok; unquoted names fold to lower case)"},
            {"split-key", "COLUMN", "integer column to split on for parallel export"},
            {"parallel", "N", "connections / key ranges (default 4 with --split-key, else 1)"},
            {"where", "SQL", "only rows matching this condition (SQL, run as you)"},
            {"columns", "A,B,...", "columns to export, in this order (default: all)"},
            {"format", "csv|text", "output format (csv)"},
            {"header", "", "write a header line with the column names first"},
            {"output", "FILE", "write to FILE instead of stdout ('-' is stdout)"},
        });
        const ParsedArgs args = parse_args(specs, argv);
        if (args.has("help")) {
            print_help(k_usage, specs, k_examples);
            return k_exit_ok;
        }
        if (!args.positionals().empty()) {
            throw UsageError("unexpected argument '" + args.positionals().front() + "'");
        }
        const auto table = args.get("table");
        if (!table) {
            throw UsageError("--table is required");
        }
        ExportOptions options;
        try {
            options.table = QualifiedName::parse(*table);
        } catch (const Error& error) {
            throw UsageError(std::string("--table: ") + error.what());
        }
        if (const auto key = args.get("split-key")) {
            options.split_key = parse_identifier(*key, "--split-key");
        }
        options.parallelism = static_cast<std::size_t>(
            args.get_int("parallel", 1, 256).value_or(options.split_key.empty() ? 1 : 4));
        if (options.parallelism > 1 && options.split_key.empty()) {
            throw UsageError("--parallel needs --split-key (the column to split the table on)");
        }
        options.where = args.get_or("where", "");
        if (const auto columns = args.get("columns")) {
            options.columns = parse_identifiers(*columns, "--columns");
        }
        options.format = args.get_or("format", "csv");
        if (options.format != "csv" && options.format != "text") {
            throw UsageError("--format must be csv or text, not '" + options.format + "'");
        }
        const double timeout = args.get_seconds("connect-timeout").value_or(30.0);
        if (timeout <= 0) {
            throw UsageError("--connect-timeout must be positive");
        }
        options.connect_timeout = std::chrono::milliseconds(static_cast<long long>(timeout * 1000));
        std::string output = args.get_or("output", "-");
        const bool quiet = args.has("quiet");
        if (output == "-" && ::isatty(STDOUT_FILENO) == 1 && !quiet) {
            std::fprintf(stderr, "pg_ingest export: writing to the terminal (use --output FILE)\n");
        }

        const ConnectionOptions connection = connection_options(args);
        Progress progress("export", Progress::choose(quiet), std::nullopt);
        options.on_progress = [&progress](std::uint64_t rows, std::uint64_t bytes) {
            progress.add(rows, bytes);
        };
        Exporter exporter(connection, options);
        ExportResult result;
        if (output == "-") {
            result = exporter.run(std::cout, args.has("header"));
        } else if (!is_regular_or_new(output)) {
            // A device, a FIFO, a socket: written in place (renaming a file over it would
            // replace the node, and its reader would get nothing).
            std::ofstream file(output, std::ios::binary | std::ios::trunc);
            if (!file) {
                const int error = errno;
                throw std::runtime_error("cannot open '" + output +
                                         "' for writing: " + std::strerror(error));
            }
            try {
                result = exporter.run(file, args.has("header"));
            } catch (const Error& error) {
                if (error.sqlstate() == "58030") {  // the device or pipe refused the bytes
                    throw Error("cannot write '" + output + "': " + error.what(), error.sqlstate(),
                                error.detail(), error.hint(), false);
                }
                throw;
            }
            file.close();
            if (!file) {
                throw std::runtime_error("cannot write '" + output + "'");
            }
        } else {
            // Through a symbolic link: the file it names is replaced, not the link.
            output = resolved(output);
            const std::string partial = output + ".partial-" + std::to_string(::getpid());
            // Made here and only here (O_EXCL): a name someone else made first, a symbolic link
            // planted at it say, is refused rather than followed. Private (0600) until complete.
            const int fd =
                ::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0) {
                const int error = errno;
                throw std::runtime_error("cannot create '" + output + "' (its temporary file '" +
                                         partial + "'): " + std::strerror(error));
            }
            if (partial.size() < sizeof(g_partial)) {
                std::memcpy(g_partial, partial.c_str(), partial.size() + 1);
                struct sigaction action {};
                action.sa_handler = remove_partial_and_die;
                sigemptyset(&action.sa_mask);
                for (const int signo : {SIGINT, SIGTERM}) {
                    // A signal the shell had us ignore (a background job) stays ignored.
                    struct sigaction inherited {};
                    if (::sigaction(signo, nullptr, &inherited) == 0 &&
                        inherited.sa_handler != SIG_IGN) {
                        ::sigaction(signo, &action, nullptr);
                    }
                }
            }
            FdOutput file(fd);
            try {
                // A file replaced keeps its mode (and owner, where we may set it), as writing
                // it in place would: the new one must not be readable by more people. Set on
                // the open file, never through a name.
                struct stat old {};
                const mode_t mode = ::stat(output.c_str(), &old) == 0 && S_ISREG(old.st_mode)
                                        ? old.st_mode & 07777
                                        : 0666 & ~current_umask();
                if (::fchmod(fd, mode) != 0) {
                    const int error = errno;
                    throw std::runtime_error("cannot set the mode of '" + partial +
                                             "': " + std::strerror(error));
                }
                if (S_ISREG(old.st_mode)) {
                    (void)::fchown(fd, old.st_uid, old.st_gid);  // root only
                    (void)::fchmod(fd, mode);                    // chown drops set-id bits
                }
                std::ostream stream(&file);
                try {
                    result = exporter.run(stream, args.has("header"));
                } catch (const Error& error) {
                    if (error.sqlstate() == "58030") {  // the file refused the bytes
                        throw Error("cannot write '" + output + "': " + file.error(),
                                    error.sqlstate(), error.detail(), error.hint(), false);
                    }
                    throw;
                }
                if (!stream.flush() || !file.close()) {
                    throw std::runtime_error("cannot write '" + output + "': " + file.error());
                }
                if (std::rename(partial.c_str(), output.c_str()) != 0) {
                    const int error = errno;
                    throw std::runtime_error("cannot rename '" + partial + "' to '" + output +
                                             "': " + std::strerror(error));
                }
                g_partial[0] = '\0';
            } catch (...) {
                (void)file.close();
                ::unlink(partial.c_str());
                g_partial[0] = '\0';
                throw;
            }
        }
        progress.stop();
        if (!quiet) {
            std::fprintf(stderr, "exported %llu rows (%s) in %.1f s over %zu range%s\n",
                         static_cast<unsigned long long>(result.rows),
                         format_bytes(static_cast<double>(result.bytes)).c_str(),
                         progress.elapsed_seconds(), result.ranges.size(),
                         result.ranges.size() == 1 ? "" : "s");
        }
        return k_exit_ok;
    });
}

}  // namespace pg_ingest::cli
