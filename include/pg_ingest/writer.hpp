// pg_ingest::Writer — batched, deduplicated, retried loading of typed rows into one table.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/export.hpp>
#include <pg_ingest/options.hpp>
#include <pg_ingest/pool.hpp>
#include <pg_ingest/schema.hpp>
#include <pg_ingest/value.hpp>

namespace pg_ingest {

// A row (or a delete) the server refused, reported once, after its batch committed.
struct PG_INGEST_API RejectedRow {
    std::uint64_t row_number = 0;  // 1-based count of write()/erase() calls on this writer
    bool is_delete = false;
    std::string sqlstate;
    std::string message;  // the server's message (and DETAIL, when there is one)
    Row values;           // the row as written (for a delete: the key)
};

struct PG_INGEST_API WriterMetrics {
    std::uint64_t rows_in = 0;            // write() calls that took a row (numbered)
    std::uint64_t deletes_in = 0;         // erase() calls accepted
    std::uint64_t rows_deduplicated = 0;  // superseded by a later operation on the same key
    std::uint64_t rows_out = 0;           // rows sent in committed batches
    std::uint64_t deletes_out = 0;        // deletes sent in committed batches
    std::uint64_t bytes_out = 0;          // encoded bytes of committed batches
    std::uint64_t rows_rejected = 0;      // reported through the reject handler
    std::uint64_t rows_discarded = 0;     // dropped: failed strict batch, or never flushed
    std::uint64_t retries = 0;            // batch re-sends after transient errors
    std::uint64_t flushes = 0;            // committed batches
    std::uint64_t flush_failures = 0;     // flushes that ended in an Error
    std::uint64_t commits_resolved = 0;   // COMMITs whose reply was lost, settled by txid_status
    std::chrono::microseconds last_flush_latency{0};
    std::chrono::microseconds max_flush_latency{0};
    std::chrono::microseconds total_flush_latency{0};
    // Rows of committed batches the server left as they were: their key was there already
    // (conflictmode ignore, or upsert with nothing to update), or was not (update); or a
    // BEFORE trigger dropped them. rows_out - rows_skipped - rejected writes were inserted or
    // updated.
    std::uint64_t rows_skipped = 0;
};

// The writer's classification of a flush error: true for errors that belong to rows and fail
// the same way when re-sent (SQLSTATE classes 21, 22, 23, 44, P0 and 54000 on a usable connection)
// — these are isolated (exceptionmode=ignore) or named (strict), never retried. Transient errors
// (is_transient_sqlstate) are retried; anything else is thrown as it is. Never throws.
PG_INGEST_API bool is_row_error(const Error& error) noexcept;

// Hooks may run while the writer holds its flush lock: they must not call back into the writer.
struct PG_INGEST_API WriterHooks {
    // Called once per rejected row (exceptionmode=ignore), from the thread that flushed (possibly
    // the writer's timer thread), after the batch committed. If it throws, the batch's other
    // rejected rows are still reported, then its first exception propagates out of that flush
    // (from the timer thread: out of the next write()/flush()/close()); the batch stays committed.
    // A row write() itself refuses (a value that does not fit, a NULL in a NOT NULL column, a
    // key repeated under conflictmode strict) is reported from the thread calling write(),
    // before it returns (without the flush lock); an exception the hook throws then comes out
    // of that write(). The writer never calls it from two threads at once.
    std::function<void(const RejectedRow&)> on_reject;
    // Log lines. info and debug only when verbose; warnings and errors always. Messages name
    // tables, counts and SQLSTATEs, never connection secrets. Must not throw. Without a hook
    // the lines go to standard error ("pg_ingest warning: ...").
    std::function<void(LogLevel, const std::string&)> on_log;
};

// Writes rows into one table in batches: each batch is one transaction, its keys deduplicated
// (last operation wins, per conflictmode) and sorted by key bytes so that writers on
// overlapping keys take row locks in the same order.
//
// Modes (Options::write_mode / conflict_mode):
//   copy   binary COPY ... WITH (ON_CONFLICT '<mode>') through the pg_ingest extension; when
//          the extension is not installed in the database, binary COPY into a temporary table
//          and INSERT ... SELECT ... ON CONFLICT (UPDATE ... FROM for update) in the same
//          transaction. Tables without a key, and conflictmode=strict (an append: an existing
//          key fails with 23505), get a plain binary COPY.
//   insert multi-row INSERT with binary parameters; on a unique violation in upsert/ignore
//          conflict modes the batch is re-sent as upsert statements (update mode always uses
//          UPDATE; strict keeps the error).
//   upsert multi-row INSERT ... ON CONFLICT DO UPDATE / DO NOTHING; UPDATE ... FROM (VALUES)
//          for update; plain INSERT for strict.
// Deletes (erase) are sent first, as DELETE ... WHERE (key) IN (...), in the same transaction;
// where its writes update (conflictmode upsert/update, through COPY ON CONFLICT, the staged
// fallback or INSERT ... ON CONFLICT), a batch with deletes and writes first locks the existing
// rows of all its keys (SELECT ... FOR NO KEY UPDATE) in the order its writes take them, which
// keeps writers that mix erase() and write() from deadlocking on each other's deletes. When such
// a batch fails with a row error (e.g. 23503: a write that re-points a row away from a parent
// erased after it, under a foreign key that is not deferred), it is sent again with its
// operations in the order they were issued (each run of deletes or of writes its own statements,
// a key's delete before its write), and its rows are isolated or named in that order. That
// attempt inserts its new keys statement by statement, not in one order with other writers':
// two such batches can deadlock on new keys (40P01, retried as any transient failure).
//
// Flushes happen when batchsize operations or batchbytes encoded bytes are buffered,
// batchwritetimeoutms after the batch's first row (also when no new rows arrive), on flush() and
// close(). A full batch is sent by the writer's own thread (backgroundflush, the default) while
// write() fills the next one, so encoding overlaps the server's work; a write() that finds the
// next batch full as well waits until the first is sent (at most two batches are buffered).
// With backgroundflush=0 the write() that fills a batch sends it itself; when that send fails,
// write() throws with its row already in the batch (kept or dropped by the error rules below),
// so the row must not be written again. (With backgroundflush=1 a write() that throws never took
// its row.) Batches are sent one at a time, in order, on one transaction each.
//
// Errors at flush: transient ones (is_transient_sqlstate, lost connection) re-send the whole
// batch on a fresh transaction, maxretrytimes times, waiting retrywaittime, doubled each time;
// when they are exhausted the Error is thrown and the batch is KEPT: the next flush sends it
// first. The writer's own thread (when there is one: batchwritetimeoutms > 0 or
// backgroundflush) also sends kept batches again by itself, with the back-off going on
// doubling (at least 100 ms, at most max(retrywaittime, 30 s)) while they keep failing, so a
// batch kept through an outage goes out once the server is back, also when no call comes.
// Row-level data errors (classes 21, 22, 23, 44, P0, and 54000) are not retried:
//   exceptionmode=strict   the bad row is searched for by bisection in a new attempt, and
//                          an Error with the server's SQLSTATE naming the row number is
//                          thrown; the batch is rolled back and dropped (counted in
//                          rows_discarded, and logged at error level with the SQLSTATE and
//                          row number, never values). Should no row fail on its own (the
//                          batch failed only in the order its statements took), that attempt
//                          commits the batch.
//   exceptionmode=ignore   bad rows are isolated by bisection (savepoints), every good row is
//                          committed and each bad row is reported once through on_reject.
// Bisection applies a failed range's first half before its second, so rows that fail there with
// an error another row can clear (23503, 23505, 23P01, a trigger's P0xxx) are tried again, in
// their order and first all at once, while that leaves fewer failing (at most 4 more passes): a
// row valid only with a later row of its batch (a child before its parent, a chain of them) is
// not blamed. A row's own errors (bad data, NOT NULL, CHECK) are not tried again, nor an erase
// once its key's later write went in (it would undo that write). Strict names the first row, by
// row number, that still fails.
// Other server errors (permissions, missing table, ...) are thrown as they are, batch kept.
// A connection lost while COMMIT is in flight leaves the outcome open: the writer asks the
// server (txid_status of the batch's transaction, on another connection) and re-sends only a
// batch that did not commit, so an append batch is never loaded twice. When the server cannot
// be asked, the flush throws Error 08006 (retryable) when it was unreachable, or 08007 (not
// retryable: it needs fixing first) when it answered with an error (no privilege on
// txid_status(), a statement_timeout), the reason in its detail; the batch is kept with its
// question either way: the next flush asks again before sending anything. When the server no longer
// knows the transaction, the batch is dropped (rows_discarded) and Error 08007 is thrown, not
// retryable: re-sending could load it twice. Errors of a flush on the writer's thread (a full
// batch, the timer, a kept batch sent again) are thrown by the next write()/erase(), which then
// does nothing else (a write() that throws such an error did not add its row). flush() and close()
// throw such an error, also one that happens while they wait, when it dropped rows; when its batch
// was kept they send that batch again instead, and throw only their own error if it fails again. An
// error whose batch was kept is not thrown once a later flush has sent that batch (or failed on it
// with an error of its own); every such failure is logged at error level when it happens. An error
// whose rows were dropped is always thrown, and nothing written after those rows is sent before it
// has been thrown (so a caller that replays from its last good point never finds later rows already
// committed).
//
// Threading: write(), erase(), flush() and close() may be called from several threads; batches
// are applied in order. Blocking: write()/erase() block while they flush (backgroundflush=0) or
// while both buffered batches are full; each flush attempt is bounded by flushtimeoutms
// (connection wait included), retries add their back-off. An attempt that times out has its
// statement cancelled on the server before its connection is closed, so no abandoned backend
// keeps waiting on locks (or holding them) behind the writer's back.
class PG_INGEST_API Writer {
  public:
    // Opens the writer: reads the schema (`table` and targetschema as TableSchema::load reads
    // them: schema.table is split, a name in double quotes is exact), resolves `columns` (empty =
    // every column but generated and GENERATED ALWAYS identity ones; an identity column named here
    // is written as COPY writes it, and never updated) and the key (conflictcolumns, else the
    // primary key, else the only unique key), checks that every column's type can be encoded and
    // that the modes fit the table, and detects the extension. Throws Error: 42P01 no table, 42703
    // unknown column, 0A000 unsupported column type or mode, 42P10 no usable key (also
    // conflictcolumns that match no unique index where the statements need one: writemode copy
    // but conflictmode strict, or update without the extension; writemode upsert with
    // conflictmode upsert or ignore), 22023 invalid options; connection Errors. Blocks: for a
    // connection up to connecttimeoutms, then for the catalog reads up to flushtimeoutms.
    Writer(std::shared_ptr<ConnectionPool> pool, std::string_view table,
           std::vector<std::string> columns, Options options, WriterHooks hooks = {});
    // Same with a private pool of options.connection_max_active connections.
    Writer(const ConnectionOptions& connection, std::string_view table,
           std::vector<std::string> columns, Options options, WriterHooks hooks = {});

    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    // Stops the writer's thread and DISCARDS unflushed rows (counted in rows_discarded and
    // logged as a warning): a destructor cannot report errors, so it sends nothing new. A batch
    // the writer's thread is already sending is finished (whole, in its one transaction) before
    // the destructor returns (the writer's thread gives up the back-off of a retry then). An
    // error of the writer's thread that no call has thrown is logged
    // at error level (SQLSTATE and row number). Call close() to flush. Never throws.
    ~Writer();

    // Adds one row (values in the writer's column order). Checks arity (22P04), types and ranges
    // (see encode_field), NOT NULL columns and NULL keys (23502) now: a bad row is not added.
    // A wrong arity, a wrong kind of value (42804) or a NULL key throws. A value that does not
    // fit its column (class 22) or a NULL in a NOT NULL column throws under exceptionmode=strict;
    // under ignore it is reported through on_reject (on this thread, before write() returns) and
    // counted in rows_in and rows_rejected, and the row takes its number, as a row the server
    // refuses does. Under conflictmode=strict a key repeated inside the batch is refused with
    // 23505 (thrown in exceptionmode=strict, reported through on_reject otherwise). A write
    // that an erase() of its key later in the batch supersedes still fails, when the batch is
    // sent, if the key was in the table before the batch (23505, as one operation at a time).
    void write(Row row);
    // Deletes by key (values of the key columns, in key order). A tombstone: later writes of the
    // key in the batch come after it. Throws Error 0A000 when the table has no key; a key value
    // that does not fit its column, or NULL, throws in both exception modes (as write()'s key).
    void erase(Row key);
    // Sends everything buffered now and waits for it (see the error rules above).
    void flush();
    // Flushes, then stops the writer's thread. From the moment it is called, write()/erase()
    // throw 55000 (also when close() itself throws; calling it again retries what was kept).
    // When close() throws, the writer's thread is stopped first: nothing kept is sent behind the
    // caller's back afterwards. Idempotent once it has returned normally.
    void close();

    WriterMetrics metrics() const;
    const TableSchema& schema() const noexcept;
    // The writer's columns (catalog spelling) and key columns.
    const std::vector<std::string>& columns() const noexcept;
    const std::vector<std::string>& key_columns() const noexcept;
    // True when COPY ON CONFLICT of the pg_ingest extension is used (write_mode copy).
    bool uses_extension() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace pg_ingest
