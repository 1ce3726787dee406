// The client API guide's example (README, "Client library"): upsert a stream of orders with the
// Writer, report rejected rows, delete one order (CDC), print the metrics.
// Usage: load_orders CONNECTION_STRING   (key=value, postgresql:// URI or jdbc:postgresql:// URL)
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>

#include <pg_ingest/pg_ingest.hpp>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: load_orders CONNECTION_STRING\n";
        return 2;
    }
    try {
        const pg_ingest::ConnectionOptions where(argv[1]);
        {
            pg_ingest::Connection c =
                pg_ingest::Connection::connect(where, std::chrono::seconds(10));
            c.execute(
                "CREATE TABLE IF NOT EXISTS orders (order_id bigint PRIMARY KEY, status text NOT "
                "NULL, amount numeric(12,2) CHECK (amount >= 0), updated_at timestamptz DEFAULT "
                "now())");
        }
        // The option names data engineers know from the Flink connectors.
        const pg_ingest::Options options =
            pg_ingest::Options::from_map({{"writemode", "copy"},
                                          {"conflictmode", "upsert"},
                                          {"batchsize", "10000"},
                                          {"exceptionmode", "ignore"},
                                          {"maxretrytimes", "3"}});
        pg_ingest::WriterHooks hooks;
        hooks.on_reject = [](const pg_ingest::RejectedRow& r) {
            std::cerr << "rejected row " << r.row_number << ": " << r.sqlstate << " " << r.message
                      << '\n';
        };
        pg_ingest::Writer writer(where, "orders", {"order_id", "status", "amount"}, options, hooks);
        for (std::int64_t id = 1; id <= 100000; ++id)
            writer.write({id, id % 3 ? "paid" : "shipped",
                          pg_ingest::Numeric(std::to_string(id % 1000) + ".50")});
        writer.write({std::int64_t{7}, "refunded", pg_ingest::Numeric("0")});      // last wins
        writer.write({std::int64_t{100001}, "broken", pg_ingest::Numeric("-1")});  // CHECK fails
        writer.erase({std::int64_t{8}});                                           // a CDC delete
        writer.close();  // flushes what is left; throws if a batch could not be written
        const pg_ingest::WriterMetrics m = writer.metrics();
        std::cout << "rows out " << m.rows_out << ", deletes " << m.deletes_out << ", rejected "
                  << m.rows_rejected << ", flushes " << m.flushes << ", retries " << m.retries
                  << '\n';
        return m.rows_rejected > 0 ? 2 : 0;
    } catch (const pg_ingest::Error& e) {
        std::cerr << "load_orders: " << e.what() << " (SQLSTATE " << e.sqlstate()
                  << (e.retryable() ? ", retryable" : "") << ")\n";
        return 1;
    }
}
