// pg_ingest jobs | wait | cancel | retry: watching and steering async load jobs.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <thread>

#include <pg_ingest/async_job.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace pg_ingest::cli {

namespace {

std::int64_t parse_job_id(const std::string& text) {
    char* end = nullptr;
    const long long id = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || id <= 0) {
        throw UsageError("job id must be a positive integer, got '" + text + "'");
    }
    return id;
}

std::vector<std::int64_t> job_ids(const ParsedArgs& args, bool many) {
    const auto& ids = args.positionals();
    if (ids.empty()) {
        throw UsageError("a job id is required");
    }
    if (!many && ids.size() > 1) {
        throw UsageError("one job id expected, got " + std::to_string(ids.size()));
    }
    std::vector<std::int64_t> parsed;
    for (const auto& id : ids) {
        parsed.push_back(parse_job_id(id));
    }
    return parsed;
}

// Returns true (and prints help) when --help was given.
bool help_requested(const ParsedArgs& args, const std::string& usage,
                    const std::vector<OptionSpec>& specs, const std::string& examples) {
    if (!args.has("help")) {
        return false;
    }
    std::printf("%s\nOptions:\n%s\nExamples:\n%s", usage.c_str(), format_options(specs).c_str(),
                examples.c_str());
    return true;
}

// Created-at without fractional seconds and time zone: "2024-05-01 12:00:03".
std::string short_time(const std::string& timestamp) {
    return timestamp.substr(0, std::min<std::size_t>(timestamp.size(), 19));
}

void print_table(const std::vector<AsyncJob>& jobs) {
    const std::vector<std::string> head = {"ID",      "KEY",      "TARGET",   "STATE",
                                           "STAGED",  "APPLIED",  "INSERTED", "UPDATED",
                                           "SKIPPED", "REJECTED", "CREATED",  "ERROR"};
    std::vector<std::vector<std::string>> rows;
    for (const auto& job : jobs) {
        // Keys, names and messages hold what users wrote: printed as text, never as control
        // sequences for the terminal, and on one line.
        rows.push_back(
            {std::to_string(job.id), printable(job.job_key), printable(job.target),
             std::string(to_string(job.state)), std::to_string(job.rows_staged),
             std::to_string(job.rows_applied), std::to_string(job.rows_inserted),
             std::to_string(job.rows_updated), std::to_string(job.rows_skipped),
             std::to_string(job.rows_rejected), short_time(job.created_at),
             printable(job.error_sqlstate.empty() ? job.error_message
                                                  : job.error_sqlstate + " " + job.error_message)});
    }
    std::vector<std::size_t> width(head.size());
    for (std::size_t c = 0; c < head.size(); ++c) {
        width[c] = head[c].size();
        for (const auto& row : rows) {
            width[c] = std::max(width[c], row[c].size());
        }
    }
    auto print_row = [&](const std::vector<std::string>& row) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            const bool last = c + 1 == row.size();
            line += row[c];
            if (!last) {
                line += std::string(width[c] - row[c].size() + 2, ' ');
            }
        }
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
        std::printf("%s\n", line.c_str());
    };
    print_row(head);
    for (const auto& row : rows) {
        print_row(row);
    }
    if (rows.empty()) {
        std::printf("(no jobs)\n");
    }
}

// The exit code for a job that has stopped waiting.
int report_job(const AsyncJob& job, bool quiet) {
    if (!quiet) {
        std::fprintf(
            stderr, "job %lld %s: %lld inserted, %lld updated, %lld skipped, %lld rejected\n",
            static_cast<long long>(job.id), std::string(to_string(job.state)).c_str(),
            static_cast<long long>(job.rows_inserted), static_cast<long long>(job.rows_updated),
            static_cast<long long>(job.rows_skipped), static_cast<long long>(job.rows_rejected));
    }
    if (job.state == JobState::fail) {
        std::fprintf(stderr, "pg_ingest wait: job %lld failed: %s%s%s\n",
                     static_cast<long long>(job.id), job.error_sqlstate.c_str(),
                     job.error_sqlstate.empty() ? "" : " ", printable(job.error_message).c_str());
        return k_exit_failure;
    }
    if (job.state == JobState::cancel) {
        std::fprintf(stderr, "pg_ingest wait: job %lld was cancelled\n",
                     static_cast<long long>(job.id));
        return k_exit_failure;
    }
    if (job.state != JobState::finish) {
        return k_exit_failure;
    }
    return job.rows_rejected > 0 ? k_exit_rejected : k_exit_ok;
}

}  // namespace

int run_jobs(const std::vector<std::string>& argv) {
    return guarded("jobs", [&] {
        const auto specs = with_common_options({
            {"table", "TABLE", "only jobs loading into this table (schema.table ok)"},
            {"watch", "", "redraw the table until interrupted (Ctrl-C)"},
            {"interval", "SECONDS", "refresh period with --watch (2)"},
            {"count", "N", "--watch: stop after N refreshes (default: until interrupted)"},
        });
        const ParsedArgs args = parse_args(specs, argv);
        if (help_requested(
                args,
                "Usage: pg_ingest jobs [--table TABLE] [--watch [--interval S] [--count N]]\n"
                "Lists the async load jobs you can see, newest first.\n",
                specs,
                "  pg_ingest jobs\n"
                "  pg_ingest jobs --table sales.orders --watch --interval 1\n"
                "  pg_ingest jobs --watch --interval 5 --count 12   # one minute\n")) {
            return k_exit_ok;
        }
        if (!args.positionals().empty()) {
            throw UsageError("unexpected argument '" + args.positionals().front() + "'");
        }
        const double interval = args.get_seconds("interval").value_or(2.0);
        if (interval <= 0) {
            throw UsageError("--interval must be positive");
        }
        const auto count = args.get_int("count", 1, std::int64_t(1) << 40);
        if (count && !args.has("watch")) {
            throw UsageError("--count applies to --watch only");
        }
        std::optional<QualifiedName> table;
        if (const auto name = args.get("table")) {
            table = QualifiedName::parse(*name);
        }
        Connection connection = connect(args);
        require_async_load(connection);
        if (!args.has("watch")) {
            print_table(list_async_load_jobs(connection, table));
            return k_exit_ok;
        }
        install_interrupt_handler();
        const bool terminal = ::isatty(STDOUT_FILENO) == 1;
        for (std::int64_t refresh = 1; !interrupted(); ++refresh) {
            const auto jobs = list_async_load_jobs(connection, table);
            if (terminal) {
                std::printf("\033[H\033[2J");
            }
            const std::time_t now = std::time(nullptr);
            char stamp[64];
            std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", std::localtime(&now));
            std::printf("%s  (every %gs, Ctrl-C to stop)\n", stamp, interval);
            print_table(jobs);
            std::fflush(stdout);
            if (count && refresh >= *count) {
                break;
            }
            const auto until = std::chrono::steady_clock::now() +
                               std::chrono::milliseconds(static_cast<long long>(interval * 1000));
            while (!interrupted() && std::chrono::steady_clock::now() < until) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        return k_exit_ok;
    });
}

int run_wait(const std::vector<std::string>& argv) {
    return guarded("wait", [&] {
        const auto specs = with_common_options({
            {"timeout", "SECONDS", "stop waiting after this long (default: no limit)"},
        });
        const ParsedArgs args = parse_args(specs, argv);
        if (help_requested(args,
                           "Usage: pg_ingest wait ID... [--timeout SECONDS]\n"
                           "Waits until the jobs end. Exit code: 0 all FINISH, 2 FINISH with "
                           "rejected rows,\n1 a job failed or was cancelled, or the timeout "
                           "passed.\n",
                           specs, "  pg_ingest wait 42\n  pg_ingest wait 42 43 --timeout 600\n")) {
            return k_exit_ok;
        }
        const auto ids = job_ids(args, true);
        const auto timeout = args.get_seconds("timeout");
        Connection connection = connect(args);
        require_async_load(connection);
        const auto deadline =
            timeout ? std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<long long>(*timeout * 1000))
                    : std::chrono::steady_clock::time_point::max();
        const auto jobs = wait_async_load_jobs(connection, ids, deadline);
        int code = k_exit_ok;
        for (const auto& job : jobs) {
            if (!is_ended(job.state)) {
                std::fprintf(stderr, "pg_ingest wait: timed out; job %lld is %s\n",
                             static_cast<long long>(job.id),
                             std::string(to_string(job.state)).c_str());
                code = k_exit_failure;
                continue;
            }
            code = worse(code, report_job(job, args.has("quiet")));
        }
        return code;
    });
}

namespace {

int change_state(const std::string& command, const std::vector<std::string>& argv,
                 JobState (*change)(Connection&, std::int64_t), const std::string& usage) {
    return guarded(command, [&] {
        const auto specs = with_common_options({});
        const ParsedArgs args = parse_args(specs, argv);
        if (help_requested(args, usage, specs,
                           "  pg_ingest " + command + " 42\n  pg_ingest " + command +
                               " 42 --dsn 'postgresql://loader@db/dw'\n")) {
            return k_exit_ok;
        }
        const auto id = job_ids(args, false).front();
        Connection connection = connect(args);
        require_async_load(connection);
        const JobState state = change(connection, id);
        std::printf("job %lld %s\n", static_cast<long long>(id),
                    std::string(to_string(state)).c_str());
        return k_exit_ok;
    });
}

}  // namespace

int run_cancel(const std::vector<std::string>& argv) {
    return change_state("cancel", argv, &cancel_async_load,
                        "Usage: pg_ingest cancel ID\n"
                        "Cancels a job in INIT, READY or LOADING (a loading job rolls back).\n");
}

int run_retry(const std::vector<std::string>& argv) {
    return change_state("retry", argv, &retry_async_load,
                        "Usage: pg_ingest retry ID\nPuts a FAIL job back to READY.\n");
}

}  // namespace pg_ingest::cli
