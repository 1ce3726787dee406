// Client-side contenders of bench scenario E (bench/scenarios/E-client.sh). One contender per
// process, so that each starts with a fresh connection and ru_maxrss is its own.
//
//   client_bench CONTENDER CONNINFO TABLE SOURCE [BATCH_SIZE]
//
//   writer-append         Writer, writemode copy, conflictmode strict (append: a repeated key
//                         fails, as in plain COPY)
//   writer-upsert         Writer, writemode copy, conflictmode upsert (COPY ON CONFLICT)
//   writer-insert-upsert  Writer, writemode upsert: multi-row INSERT ... ON CONFLICT DO UPDATE,
//                         1000 rows per statement, binary parameters
//   copy-binary           the library's CopyIn + encode_field, one binary COPY (no Writer)
//   stream-to             libpqxx pqxx::stream_to, one transaction
//   writer-generate       writer-append of SOURCE generated rows (ids 1..SOURCE, see generated())
//                         made on the fly: for peak memory, nothing is held but the batch
//
// SOURCE is a CSV file of (id bigint, a bigint, b text, c text) rows without NULLs, parsed into
// memory before the clock starts (parsing is not timed), or for writer-generate a row count.
// The clock runs from before connecting to after the last commit. Prints one line:
//   seconds=S rows=N maxrss_kb=K open_rss_kb=K0
// (K0: ru_maxrss once the connection / writer was open, before the first row). Exit 1 on any
// error or when the Writer rejected or dropped a row.
#include <sys/resource.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <pg_ingest/pg_ingest.hpp>

#ifdef PG_INGEST_BENCH_PQXX
#include <pqxx/pqxx>
#endif

namespace {

using Clock = std::chrono::steady_clock;

struct Record {
    std::int64_t id = 0;
    std::int64_t a = 0;
    std::string b;
    std::string c;
};

long maxrss_kb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

// The CSV that psql's COPY ... TO STDOUT (FORMAT csv) writes: quoted fields with "" escapes
// (line breaks inside quotes allowed). An empty unquoted field would be NULL, which the
// contenders here do not model, so it is refused rather than loaded as ''.
std::vector<Record> read_csv(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<Record> rows;
    std::vector<std::string> fields;
    std::size_t i = 0;
    const std::size_t n = data.size();
    while (i < n) {
        fields.clear();
        while (true) {
            std::string field;
            bool quoted = false;
            if (i < n && data[i] == '"') {
                quoted = true;
                ++i;
                while (true) {
                    if (i >= n) {
                        throw std::runtime_error(path + ": unterminated quoted field");
                    }
                    const char ch = data[i++];
                    if (ch != '"') {
                        field += ch;
                    } else if (i < n && data[i] == '"') {
                        field += '"';
                        ++i;
                    } else {
                        break;
                    }
                }
            }
            while (i < n && data[i] != ',' && data[i] != '\n') {
                field += data[i++];
            }
            if (!quoted && field.empty()) {
                throw std::runtime_error(path + ": NULL (empty unquoted field) in record " +
                                         std::to_string(rows.size() + 1));
            }
            fields.push_back(std::move(field));
            if (i >= n || data[i] == '\n') {
                ++i;
                break;
            }
            ++i;  // the comma
        }
        if (fields.size() != 4) {
            throw std::runtime_error(path + ": record " + std::to_string(rows.size() + 1) +
                                     " has " + std::to_string(fields.size()) + " fields, not 4");
        }
        rows.push_back(
            Record{std::stoll(fields[0]), std::stoll(fields[1]), fields[2], std::move(fields[3])});
    }
    return rows;
}

// Row k of writer-generate. The scenario computes the same rows in SQL for its check:
//   k, k * 31 + 7, lpad(to_hex(k * 2654435761), 16, '0') || lpad(to_hex(k * 40503 + 12345),
//   16, '0'), format('load %s, "q%s"', k, k % 97)
// (md5-sized b, like the narrow dataset's, without needing md5 here).
Record generated(std::int64_t k) {
    char b[40];
    std::snprintf(b, sizeof b, "%016" PRIx64 "%016" PRIx64,
                  static_cast<std::uint64_t>(k * 2654435761LL),
                  static_cast<std::uint64_t>(k * 40503LL + 12345));
    return Record{k, k * 31 + 7, b,
                  "load " + std::to_string(k) + ", \"q" + std::to_string(k % 97) + "\""};
}

struct Outcome {
    double seconds = 0;
    std::uint64_t rows = 0;
    long open_rss_kb = 0;
};

double since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

pg_ingest::Options writer_options(pg_ingest::WriteMode mode, pg_ingest::ConflictMode conflict,
                                  std::size_t batch_size) {
    pg_ingest::Options options;
    options.write_mode = mode;
    options.conflict_mode = conflict;
    options.batch_size = batch_size;
    // Flushes only when a batch is full (on the Writer's thread, backgroundflush) and at close():
    // no timer, same batches each run.
    options.batch_write_timeout = std::chrono::milliseconds(0);
    options.exception_mode = pg_ingest::ExceptionMode::strict;
    return options;
}

pg_ingest::WriterHooks writer_hooks() {
    pg_ingest::WriterHooks hooks;
    hooks.on_log = [](pg_ingest::LogLevel level, const std::string& message) {
        if (level == pg_ingest::LogLevel::warning || level == pg_ingest::LogLevel::error) {
            std::cerr << "writer: " << message << '\n';
        }
    };
    return hooks;
}

// Every row written must have been sent: anything rejected, discarded or merged away is a
// failed run (the harness checks the table as well).
void check_metrics(const pg_ingest::Writer& writer, std::uint64_t rows) {
    const pg_ingest::WriterMetrics m = writer.metrics();
    if (m.rows_out != rows || m.rows_rejected != 0 || m.rows_discarded != 0 ||
        m.rows_deduplicated != 0) {
        throw std::runtime_error("writer metrics: rows_out " + std::to_string(m.rows_out) +
                                 ", rejected " + std::to_string(m.rows_rejected) + ", discarded " +
                                 std::to_string(m.rows_discarded) + ", deduplicated " +
                                 std::to_string(m.rows_deduplicated) + " for " +
                                 std::to_string(rows) + " rows");
    }
}

Outcome run_writer(const std::string& conninfo, const std::string& table,
                   const std::vector<Record>& rows, pg_ingest::WriteMode mode,
                   pg_ingest::ConflictMode conflict, std::size_t batch_size) {
    Outcome out;
    const auto start = Clock::now();
    pg_ingest::Writer writer(pg_ingest::ConnectionOptions(conninfo), table, {"id", "a", "b", "c"},
                             writer_options(mode, conflict, batch_size), writer_hooks());
    out.open_rss_kb = maxrss_kb();
    for (const Record& r : rows) {
        writer.write({r.id, r.a, r.b, r.c});
    }
    writer.close();
    out.seconds = since(start);
    out.rows = rows.size();
    check_metrics(writer, rows.size());
    return out;
}

Outcome run_generate(const std::string& conninfo, const std::string& table, std::int64_t count,
                     std::size_t batch_size) {
    Outcome out;
    const auto start = Clock::now();
    pg_ingest::Writer writer(
        pg_ingest::ConnectionOptions(conninfo), table, {"id", "a", "b", "c"},
        writer_options(pg_ingest::WriteMode::copy, pg_ingest::ConflictMode::strict, batch_size),
        writer_hooks());
    out.open_rss_kb = maxrss_kb();
    for (std::int64_t k = 1; k <= count; ++k) {
        Record r = generated(k);
        writer.write({r.id, r.a, std::move(r.b), std::move(r.c)});
    }
    writer.close();
    out.seconds = since(start);
    out.rows = static_cast<std::uint64_t>(count);
    check_metrics(writer, out.rows);
    return out;
}

Outcome run_copy_binary(const std::string& conninfo, const std::string& table,
                        const std::vector<Record>& rows) {
    pg_ingest::ColumnType int8;
    pg_ingest::ColumnType text;
    if (!pg_ingest::ColumnType::from_oid(20, -1, 0, "bigint", int8) ||
        !pg_ingest::ColumnType::from_oid(25, -1, 0, "text", text)) {
        throw std::runtime_error("ColumnType::from_oid refused bigint or text");
    }
    Outcome out;
    const auto start = Clock::now();
    pg_ingest::Connection connection = pg_ingest::Connection::connect(
        pg_ingest::ConnectionOptions(conninfo), std::chrono::seconds(30));
    pg_ingest::CopyIn copy(connection, "COPY " + connection.quote_identifier(table) +
                                           " (id, a, b, c) FROM STDIN WITH (FORMAT binary)");
    out.open_rss_kb = maxrss_kb();
    copy.write(pg_ingest::binary_copy_header());
    std::string tuple;
    for (const Record& r : rows) {
        tuple.assign("\0\4", 2);  // int16 field count
        pg_ingest::encode_field(r.id, int8, tuple, "id");
        pg_ingest::encode_field(r.a, int8, tuple, "a");
        pg_ingest::encode_field(r.b, text, tuple, "b");
        pg_ingest::encode_field(r.c, text, tuple, "c");
        copy.write(tuple);
    }
    copy.write(pg_ingest::binary_copy_trailer());
    const pg_ingest::Result result = copy.finish();
    out.seconds = since(start);
    out.rows = rows.size();
    if (result.affected_rows() != rows.size()) {
        throw std::runtime_error("COPY reported " + std::to_string(result.affected_rows()) +
                                 " rows");
    }
    return out;
}

#ifdef PG_INGEST_BENCH_PQXX
Outcome run_stream_to(const std::string& conninfo, const std::string& table,
                      const std::vector<Record>& rows) {
    Outcome out;
    const auto start = Clock::now();
    pqxx::connection connection(conninfo);
    pqxx::work tx(connection);
    pqxx::stream_to stream(tx, table, std::vector<std::string>{"id", "a", "b", "c"});
    out.open_rss_kb = maxrss_kb();
    for (const Record& r : rows) {
        stream << std::tie(r.id, r.a, r.b, r.c);
    }
    stream.complete();
    tx.commit();
    out.seconds = since(start);
    out.rows = rows.size();
    return out;
}
#endif

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::cerr << "usage: client_bench CONTENDER CONNINFO TABLE SOURCE [BATCH_SIZE]\n";
        return 2;
    }
    const std::string contender = argv[1];
    const std::string conninfo = argv[2];
    const std::string table = argv[3];
    const std::string source = argv[4];
    const std::size_t batch_size = argc > 5 ? std::stoul(argv[5]) : 50000;
    try {
        Outcome out;
        using pg_ingest::ConflictMode;
        using pg_ingest::WriteMode;
        if (contender == "writer-generate") {
            out = run_generate(conninfo, table, std::stoll(source), batch_size);
        } else {
            const std::vector<Record> rows = read_csv(source);
            if (contender == "writer-append") {
                out = run_writer(conninfo, table, rows, WriteMode::copy, ConflictMode::strict,
                                 batch_size);
            } else if (contender == "writer-upsert") {
                out = run_writer(conninfo, table, rows, WriteMode::copy, ConflictMode::upsert,
                                 batch_size);
            } else if (contender == "writer-insert-upsert") {
                out = run_writer(conninfo, table, rows, WriteMode::upsert, ConflictMode::upsert,
                                 batch_size);
            } else if (contender == "copy-binary") {
                out = run_copy_binary(conninfo, table, rows);
            } else if (contender == "stream-to") {
#ifdef PG_INGEST_BENCH_PQXX
                out = run_stream_to(conninfo, table, rows);
#else
                std::cerr << "client_bench: built without libpqxx (stream-to not available)\n";
                return 3;
#endif
            } else {
                std::cerr << "client_bench: unknown contender " << contender << '\n';
                return 2;
            }
        }
        std::printf("seconds=%.6f rows=%" PRIu64 " maxrss_kb=%ld open_rss_kb=%ld\n", out.seconds,
                    out.rows, maxrss_kb(), out.open_rss_kb);
        return 0;
    } catch (const pg_ingest::Error& error) {
        std::cerr << "client_bench " << contender << ": error [" << error.sqlstate() << "] "
                  << error.what() << '\n';
    } catch (const std::exception& error) {
        std::cerr << "client_bench " << contender << ": error: " << error.what() << '\n';
    }
    return 1;
}
