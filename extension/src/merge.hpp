// The merge engine: applies a stream of rows to a target table with a conflict mode. Used by
// COPY ON CONFLICT (copy_hook.cpp), ingest.merge() and the async load workers.
//
// How it works, and why:
//  1. load: every source row goes into a tuplesort keyed on the conflict columns (using the
//     unique index's own btree operators and collations) and the row's position. Spills to
//     disk beyond work_mem, so input size is not bounded by memory.
//  2. group: the sorted stream is cut into groups of equal keys; one row of each group wins
//     (last for upsert/update, first for ignore). Strict keeps every row, so a repeated key
//     fails with the ordinary unique violation.
//  3. apply: the winners go, in key order, in chunks of ingest.merge_chunk_rows, through one
//     ordinary SQL statement run as the calling user (INSERT ... ON CONFLICT, or UPDATE ...
//     FROM for update mode) whose source is the internal function ingest._merge_rows(). So
//     privileges, row-level security, triggers, defaults, generated columns, constraints and
//     partition routing are exactly those of INSERT ... ON CONFLICT. Where the target has none
//     of the features only the statement provides, the chunks are applied directly instead
//     (merge_direct.hpp), one subtransaction each, and a chunk that meets a concurrent insert
//     of one of its keys is rolled back and redone by the statement.
// Lock order: every writer takes row locks in ascending key order (sorted input, and the
// update join forced to a nested loop driven by the sorted source), so concurrent merges on
// overlapping keys wait for each other but cannot deadlock.
#pragma once

#include "boundary.hpp"

extern "C" {
#include "utils/rel.h"
}

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pg_ingest {

// none: plain append (async jobs with conflict_mode 'none'); every row is inserted, no
// conflict target is needed and nothing is deduplicated.
enum class ConflictMode { upsert, update, ignore, strict, none };

const char* conflict_mode_name(ConflictMode m);
// Throws ServerError (22023) naming the value when it is not a mode; 'none' only when
// allow_none (COPY ON CONFLICT has no append mode: that is plain COPY).
ConflictMode parse_conflict_mode(const std::string& s, bool allow_none = false);

struct MergeCounts {
    int64_t inserted = 0;
    int64_t updated = 0;
    int64_t skipped = 0;
    int64_t rejected = 0;
    int64_t written() const { return inserted + updated; }
};

struct RejectedRow {
    int64_t line_number = 0;
    std::string raw_line;
    std::string sqlstate;
    std::string message;
};

// What to merge where. Column numbers are the target's attribute numbers.
struct MergeSpec {
    Relation target = nullptr;  // opened and locked by the caller
    ConflictMode mode = ConflictMode::upsert;
    std::vector<AttrNumber> columns;          // source columns, in source order
    std::vector<std::string> conflict_names;  // CONFLICT_COLUMNS as given (empty: infer)
    std::vector<std::string> update_names;    // UPDATE_COLUMNS as given (empty: all non-key)
    bool ignore_errors = false;               // ON_ERROR 'ignore'
    std::string what = "COPY";                // for messages: the command being run
    // The CONTEXT line of errors while rows are applied: "<context> into <target>, <position>
    // N, ...". `context` empty: `what`. `position` names what a row's number counts ("line" of
    // COPY input, "row" of a job's staging); empty when the number means nothing (ingest.merge()
    // reads its source in no set order), and the number is left out.
    std::string context;
    std::string position = "line";
    // Called after every applied chunk with the counts so far (live progress of async jobs).
    std::function<void(const MergeCounts&)> on_progress;
};

// One source row, as produced by a RowSource: values for MergeSpec::columns, in order.
struct SourceRow {
    Datum* values = nullptr;
    bool* nulls = nullptr;
    int64_t line_number = 0;    // position in the input, 1-based
    const char* raw = nullptr;  // raw input line when known (text/csv), for reject reports
    int raw_len = 0;
    // Set by the consumer: a source may then give `formed` instead of values/nulls: the row as
    // a minimal tuple of the columns followed by line_number (int8), the merge's sort layout
    // when it keeps no raw lines. It lives until the next call.
    bool accepts_formed = false;
    MinimalTuple formed = nullptr;
};

// Produces rows. next() returns false at the end. May throw PgError. When
// recoverable_errors() is true a row error (SQLSTATE class 22) is reported through
// on_row_error and reading goes on.
class RowSource {
  public:
    virtual ~RowSource() = default;
    virtual bool next(SourceRow& row) = 0;
};

using RejectSink = std::function<void(RejectedRow&&)>;

// "<context> into <target>", the start of the CONTEXT line of errors while applying rows.
std::string context_into(const MergeSpec& spec);

// ", <position> N" to follow context_into() when a row is known and the spec numbers rows;
// empty otherwise.
std::string context_position(const MergeSpec& spec, int64_t number);

// Validates the spec against the target (conflict target, update columns, privileges) and
// runs the merge. Throws on any error; nothing is applied unless it returns.
MergeCounts run_merge(const MergeSpec& spec, RowSource& source, const RejectSink& on_reject);

// Checks a spec without running it (used before any input is read).
void validate_merge(const MergeSpec& spec);

// From _PG_init: forgets the backend's running merges at the end of each top-level
// transaction, where none can be running (defence against a frame skipped by an error).
void install_merge_xact_callback();

// ingest._merge_rows() support: the active merge in this backend hands its current chunk.
namespace merge_internal {
bool serve_rows(int handle, FunctionCallInfo fcinfo);
void note_conflict();
}  // namespace merge_internal

}  // namespace pg_ingest
