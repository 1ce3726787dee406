// Client-side throughput, side by side in one run against one server:
//   append:  Writer (binary COPY, unkeyed table)      vs  psql \copy of the same rows as CSV
//   upsert:  Writer copy mode (COPY ON CONFLICT)       vs  Writer upsert mode (multi-row
//            INSERT ... ON CONFLICT with binary parameters)
// Usage: writer_bench "<libpq conninfo>" [rows]   (psql must be on PATH for the CSV contender).
// Prints one line per contender: rows, seconds, rows/s. Numbers depend on the machine; record
// them with its description and the date.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <pg_ingest/pg_ingest.hpp>

using namespace pg_ingest;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

void report(const std::string& name, long rows, double seconds) {
    std::printf("%-44s %9ld rows %8.3f s %12.0f rows/s\n", name.c_str(), rows, seconds,
                rows / seconds);
}

std::string payload(long i) {
    return "customer-" + std::to_string(i % 9973) + "-" + std::to_string(i * 7919 % 100003);
}

double run_writer(const ConnectionOptions& where, const std::string& table, WriteMode mode,
                  long rows, long offset) {
    Options options;
    options.write_mode = mode;
    options.batch_size = 10000;
    options.batch_write_timeout = std::chrono::milliseconds(0);
    Writer writer(where, table, {}, options);
    const auto start = Clock::now();
    for (long i = 0; i < rows; ++i) {
        const long id = (i * 2654435761L + offset) % rows;  // scattered keys
        writer.write({id, payload(i + offset), Numeric::from_digits(std::to_string(i), 2),
                      TimestampTz::from_unix_micros(1700000000000000LL + i)});
    }
    writer.close();
    return seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: writer_bench CONNINFO [rows]\n";
        return 2;
    }
    const ConnectionOptions where(argv[1]);
    const long rows = argc > 2 ? std::atol(argv[2]) : 200000;
    Connection c = Connection::connect(where, std::chrono::seconds(10));
    const std::string columns = "(id bigint, note text, amount numeric(14,2), at timestamptz)";
    c.execute(
        "DROP TABLE IF EXISTS bench_append, bench_csv, bench_upsert_copy, bench_upsert_insert");
    c.execute("CREATE TABLE bench_append " + columns);
    c.execute("CREATE TABLE bench_csv " + columns);
    c.execute("CREATE TABLE bench_upsert_copy " + columns.substr(0, columns.size() - 1) +
              ", PRIMARY KEY (id))");
    c.execute("CREATE TABLE bench_upsert_insert " + columns.substr(0, columns.size() - 1) +
              ", PRIMARY KEY (id))");

    report("append: Writer binary COPY", rows,
           run_writer(where, "bench_append", WriteMode::copy, rows, 0));

    // The same rows as CSV through psql \copy (file written before timing starts).
    const std::string csv = "/tmp/pg_ingest_writer_bench.csv";
    {
        std::ofstream out(csv);
        for (long i = 0; i < rows; ++i) {
            const long id = (i * 2654435761L) % rows;
            out << id << ',' << payload(i) << ',' << i / 100 << '.' << (i % 100 < 10 ? "0" : "")
                << i % 100 << ",2023-11-14 22:13:20.0" << (i % 1000000) << "+00\n";
        }
    }
    const std::string command = "psql \"" + std::string(argv[1]) +
                                "\" -q -c \"\\copy bench_csv FROM '" + csv +
                                "' WITH (FORMAT csv)\"";
    const auto start = Clock::now();
    const int status = std::system(command.c_str());
    report(status == 0 ? "append: psql \\copy CSV" : "append: psql \\copy CSV (FAILED)", rows,
           seconds_since(start));
    std::remove(csv.c_str());

    // Upserts: a first load, then the same keys again (every row conflicts).
    for (int round = 0; round < 2; ++round) {
        const std::string suffix = round == 0 ? " (new keys)" : " (all conflict)";
        report("upsert: Writer copy (COPY ON CONFLICT)" + suffix, rows,
               run_writer(where, "bench_upsert_copy", WriteMode::copy, rows, round));
        report("upsert: multi-row INSERT ON CONFLICT" + suffix, rows,
               run_writer(where, "bench_upsert_insert", WriteMode::upsert, rows, round));
    }
    return 0;
}
