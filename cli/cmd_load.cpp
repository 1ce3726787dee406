// pg_ingest load: CSV, TSV or text into a table.
#include <cstdio>
#include <stdexcept>
#include <string>

#include <pg_ingest/error.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "load.hpp"

namespace pg_ingest::cli {

namespace {

const char* const k_usage =
    "Usage: pg_ingest load --table TABLE [options] [FILE...]\n"
    "\n"
    "Loads CSV, TSV or PostgreSQL text-format files (or stdin when no FILE or '-') into a table.\n"
    "Mode copy (the default) streams the input through COPY ... FROM STDIN: values are parsed\n"
    "by the server, conflicts are handled by pg_ingest's COPY ON CONFLICT. Without --batch-size\n"
    "the whole input is one transaction (all or nothing); with it every batch of N rows commits\n"
    "on its own (split on record boundaries; quoted line breaks are respected), and --parallel\n"
    "loads several batches at once (default batch: batchsize, 50000 rows). With\n"
    "--exception-mode ignore (or --reject-file) bad rows are skipped and reported; that needs a\n"
    "key on the table (a primary key or unique index) because it runs through ON_CONFLICT.\n"
    "--async stages the input into async load jobs and waits for the server to apply them;\n"
    "with --job-key a re-run finds the jobs it already submitted and never loads them twice\n"
    "(give it the same input and --batch-size: a re-run that cuts it otherwise is refused).\n"
    "\n"
    "--mode insert|upsert parses every field on the client (PostgreSQL's text syntax for the\n"
    "column's type; a bad field is rejected with its line before anything is sent) and writes\n"
    "typed rows through the client library's Writer: multi-row INSERT (insert) or INSERT ... ON\n"
    "CONFLICT (upsert; UPDATE for --conflict update), each batch of --batch-size records (default\n"
    "batchsize, 50000) one transaction, keys repeated inside a batch merged first (--conflict\n"
    "upsert/update: last wins, ignore: first wins, none/strict: the repeat is rejected, 23505).\n"
    "--parallel N runs N writers, each on its own connection. timestamptz values without an\n"
    "offset are read in the server session's TimeZone, as COPY reads them. Input must be UTF-8\n"
    "(a non-UTF-8 --encoding or PGCLIENTENCODING is refused).\n"
    "\n"
    "Exit codes: 0 loaded, 2 loaded with rejected rows (or with lines after an end-of-data\n"
    "marker \\. left unread, with a warning), 1 failed (nothing more is loaded; batches\n"
    "committed earlier stay), 3 --async stopped waiting (--timeout, Ctrl-C) while its jobs go on\n"
    "loading (they are named; see pg_ingest wait / cancel). Ctrl-C or SIGTERM starts no further\n"
    "batch: the ones in flight commit or roll back, then the load stops (exit 1); a second one\n"
    "ends it at once. In text format a \\. inside a line, or a lone backslash ending a file, is\n"
    "refused (exit 1): a backslash in data is written \\\\. So is a CSV file ending inside\n"
    "quotes and, as COPY refuses it, a line end of another kind than the file's first (LF, CRLF\n"
    "or CR). The reject file is CSV:\n"
    "source,line,record,sqlstate,message,raw_row; it holds the rejects of every committed batch;\n"
    "a run that fails before committing anything leaves an earlier file as it was. Progress goes\n"
    "to stderr (a bar on a terminal, a line every PG_INGEST_PROGRESS_INTERVAL seconds (10)\n"
    "otherwise).\n";

const char* const k_examples =
    "  pg_ingest load --table sales.orders --header orders.csv\n"
    "  zcat orders.csv.gz | pg_ingest load --table orders --conflict upsert --batch-size 50000 \\\n"
    "      --parallel 4 --reject-file rejects.csv\n"
    "  pg_ingest load --table events --format tsv --columns id,kind,payload events.tsv\n"
    "  pg_ingest load --table orders --async --job-key nightly-2024-05-01 orders.csv\n"
    "  pg_ingest load --table orders --option conflictmode=ignore --option batchsize=10000 a.csv\n"
    "  pg_ingest load --table orders --mode upsert --conflict upsert --reject-file rej.csv a.csv\n";

void print_summary(const LoadSettings& s, const LoadTotals& totals, double seconds) {
    if (totals.typed) {
        // ignore keeps the first row of a key; the other modes the last.
        const char* merged =
            s.conflict == "ignore" ? "dropped for an earlier row" : "superseded by a later row";
        std::fprintf(stderr,
                     "loaded %llu rows into %s (mode %s): %llu written, %llu %s with the same "
                     "key, %llu rejected in %.1f s\n",
                     static_cast<unsigned long long>(totals.rows_read), s.table.quoted().c_str(),
                     s.mode.c_str(), static_cast<unsigned long long>(totals.written),
                     static_cast<unsigned long long>(totals.deduplicated), merged,
                     static_cast<unsigned long long>(totals.rejected), seconds);
        if (totals.skipped > 0) {
            // ignore, or upsert with nothing to update: the key was there; update: it was not;
            // otherwise only a BEFORE trigger returning NULL leaves a row out.
            const char* why =
                s.conflict == "update"
                    ? "their key was not in the table, or nothing was to be updated"
                : s.conflict == "ignore"
                    ? "their key was in the table already, or a trigger dropped them"
                : s.conflict == "upsert"
                    ? "their key was in the table and nothing was to be updated, or a trigger "
                      "dropped them"
                    : "a trigger dropped them";
            std::fprintf(stderr, "%llu rows changed nothing: %s\n",
                         static_cast<unsigned long long>(totals.skipped), why);
        }
    } else if (!totals.still_running.empty()) {
        // Waiting stopped with jobs still loading: their rows are staged, not (yet) loaded,
        // and the counts are those of the jobs that ended.
        std::fprintf(stderr,
                     "staged %llu rows for %s in async load jobs, %zu of them still loading; the "
                     "jobs that ended: %llu inserted, %llu updated, %llu skipped, %llu rejected "
                     "in %.1f s\n",
                     static_cast<unsigned long long>(totals.rows_read), s.table.quoted().c_str(),
                     totals.still_running.size(), static_cast<unsigned long long>(totals.inserted),
                     static_cast<unsigned long long>(totals.updated),
                     static_cast<unsigned long long>(totals.skipped),
                     static_cast<unsigned long long>(totals.rejected), seconds);
    } else {
        std::fprintf(stderr,
                     "loaded %llu rows into %s: %llu inserted, %llu updated, %llu skipped, %llu "
                     "rejected in %.1f s\n",
                     static_cast<unsigned long long>(totals.rows_read), s.table.quoted().c_str(),
                     static_cast<unsigned long long>(totals.inserted),
                     static_cast<unsigned long long>(totals.updated),
                     static_cast<unsigned long long>(totals.skipped),
                     static_cast<unsigned long long>(totals.rejected), seconds);
    }
    for (const auto& note : totals.notes) {
        std::fprintf(stderr, "%s\n", note.c_str());
    }
}

}  // namespace

int run_load(const std::vector<std::string>& argv) {
    return guarded("load", [&] {
        const auto specs = with_common_options(load_option_specs());
        const ParsedArgs args = parse_args(specs, argv);
        if (args.has("help")) {
            print_help(k_usage, specs, k_examples);
            return k_exit_ok;
        }
        const LoadSettings settings = load_settings(args);
        const ConnectionOptions connection = connection_options(args);
        // In encodings whose characters may end in a backslash byte, a byte-wise "\." is not
        // necessarily one.
        InputReader reader(settings.sources, settings.input_format, settings.quote, settings.header,
                           !settings.ascii_trail_bytes);
        RejectSink rejects(settings.reject_file, reader);
        // Ctrl-C / SIGTERM: stop between units, so that what committed is whole and reported.
        install_interrupt_handler();
        Progress progress("load", Progress::choose(settings.quiet), reader.total_bytes());
        LoadTotals totals;
        try {
            if (settings.async) {
                load_async(settings, connection, reader, progress, rejects, totals);
            } else if (settings.mode != "copy") {
                load_with_writer(settings, connection, reader, progress, rejects, totals);
            } else {
                load_with_copy(settings, connection, reader, progress, rejects, totals);
            }
        } catch (...) {
            progress.stop();
            try {
                // Nothing committed: a previous reject file stays as it was.
                rejects.close(totals.committed_batches > 0);
            } catch (const std::exception&) {  // the load error is the one to report
            }
            // What committed, even under --quiet: a script that re-runs the load needs it.
            if (!settings.async && totals.committed_batches > 0) {
                std::fprintf(stderr,
                             "pg_ingest load: %llu rows in %llu batch(es) committed before the "
                             "failure stay loaded\n",
                             static_cast<unsigned long long>(totals.rows_read),
                             static_cast<unsigned long long>(totals.committed_batches));
                if (totals.rejected > 0) {
                    std::fprintf(stderr,
                                 "pg_ingest load: %llu of those rows were rejected, not loaded%s\n",
                                 static_cast<unsigned long long>(totals.rejected),
                                 settings.reject_file.empty() ? "" : " (see the reject file)");
                }
                // Which input lines those are, so that only the others are loaded again.
                for (const auto& range : describe_committed(totals.committed, reader.sources())) {
                    std::fprintf(stderr, "pg_ingest load: committed: %s\n", range.c_str());
                }
                if (settings.parallel > 1) {
                    // Batches go out over several connections: some read after the one that
                    // failed may have committed already, so they need not be the first ones.
                    std::fprintf(stderr,
                                 "pg_ingest load: with --parallel %zu the committed batches need "
                                 "not be the first ones (see the lines above): load only the "
                                 "other lines again (an upsert or ignore load can simply be run "
                                 "again)\n",
                                 settings.parallel);
                }
            }
            // Input left unread after an end-of-data marker is no part of "the other lines".
            for (const auto& warning : reader.warnings()) {
                std::fprintf(stderr, "pg_ingest load: warning: %s\n", warning.c_str());
            }
            throw;
        }
        progress.stop();
        try {
            rejects.close();
        } catch (const std::exception& error) {
            // The load has committed: say so, or a re-run would load it twice.
            print_summary(settings, totals, progress.elapsed_seconds());
            throw std::runtime_error(std::string(error.what()) +
                                     " (the rows above are loaded and committed; only the reject "
                                     "file is incomplete)");
        }
        // Input left unread is reported even under --quiet, and the exit status says so.
        for (const auto& warning : reader.warnings()) {
            std::fprintf(stderr, "pg_ingest load: warning: %s\n", warning.c_str());
        }
        if (!settings.quiet) {
            print_summary(settings, totals, progress.elapsed_seconds());
            if (!settings.reject_file.empty() && totals.rejected > 0) {
                std::fprintf(stderr, "%llu rejected row(s) written to %s\n",
                             static_cast<unsigned long long>(rejects.count()),
                             settings.reject_file.c_str());
            }
        }
        if (!totals.still_running.empty()) {
            // Not a failure: the jobs are loading, and may still fail.
            std::string ids;
            for (const auto id : totals.still_running) {
                ids += (ids.empty() ? "" : " ") + std::to_string(id);
            }
            std::fprintf(stderr,
                         "pg_ingest load: stopped waiting (%s); job(s) %s continue on the server: "
                         "'pg_ingest wait %s' waits for them, 'pg_ingest cancel ID' cancels one\n",
                         interrupted() ? "interrupted" : "--timeout", ids.c_str(), ids.c_str());
            return k_exit_still_running;
        }
        return totals.rejected > 0 || !reader.warnings().empty() ? k_exit_rejected : k_exit_ok;
    });
}

}  // namespace pg_ingest::cli
