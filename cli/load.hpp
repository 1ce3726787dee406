// pg_ingest load: the two ways data reaches the table. Both throw pg_ingest::Error (server and
// connection errors, with the input position when the server named a line) or
// std::runtime_error (input files).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pg_ingest/connection_options.hpp>

#include "committed.hpp"
#include "load_settings.hpp"
#include "progress.hpp"
#include "records.hpp"
#include "rejects.hpp"

namespace pg_ingest::cli {

struct LoadTotals {
    std::uint64_t rows_read = 0;
    std::uint64_t inserted = 0;
    std::uint64_t updated = 0;
    std::uint64_t skipped = 0;
    std::uint64_t rejected = 0;
    std::uint64_t committed_batches = 0;
    std::vector<CommittedRange> committed;  // the batches committed, for a failure's report
    // --mode insert|upsert: the writer knows rows sent, not how the server applied each one.
    bool typed = false;
    std::uint64_t written = 0;       // rows committed and inserted or updated (skipped apart)
    std::uint64_t deduplicated = 0;  // superseded by a later row with the same key in a batch
    std::vector<std::string> notes;  // printed after the summary (unless --quiet)
    // --async: jobs still running when waiting stopped (--timeout, or a signal).
    std::vector<std::int64_t> still_running;

    // Adds the counts and committed batches of a part of the load (a batch, a worker's).
    void add(const LoadTotals& part) {
        rows_read += part.rows_read;
        inserted += part.inserted;
        updated += part.updated;
        skipped += part.skipped;
        rejected += part.rejected;
        committed_batches += part.committed_batches;
        committed.insert(committed.end(), part.committed.begin(), part.committed.end());
    }
};

// Mode copy: the input text streams through COPY ... FROM STDIN (with ON_CONFLICT / ON_ERROR
// when asked). One COPY for the whole input, or one per --batch-size batch over --parallel
// connections (each batch its own transaction). On an error, batches already committed stay;
// `totals` then holds what was committed.
void load_with_copy(const LoadSettings& settings, const ConnectionOptions& connection,
                    InputReader& reader, Progress& progress, RejectSink& rejects,
                    LoadTotals& totals);

// --mode insert|upsert: records are split and parsed on the client (parse_text_value) and
// written through pg_ingest::Writer, one Writer per --parallel connection; each batch of
// --batch-size records (default batchsize) is flushed as one transaction. Bad fields and rows
// the server refuses go to `rejects` (exception mode ignore) or fail the load naming the input
// line (strict). Batches committed before a failure stay.
void load_with_writer(const LoadSettings& settings, const ConnectionOptions& connection,
                      InputReader& reader, Progress& progress, RejectSink& rejects,
                      LoadTotals& totals);

// --async: stages the input into async load jobs (AsyncLoader), submits them and waits, until
// --timeout or SIGINT/SIGTERM: jobs not ended then are listed in totals.still_running.
void load_async(const LoadSettings& settings, const ConnectionOptions& connection,
                InputReader& reader, Progress& progress, RejectSink& rejects, LoadTotals& totals);

}  // namespace pg_ingest::cli
