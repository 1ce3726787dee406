// Shared helpers for the integration tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/value.hpp>

namespace test {

// PG_INGEST_TEST_DSN; throws std::runtime_error (failing the calling test) when it is unset.
std::string dsn();
pg_ingest::ConnectionOptions options();
// Connects with the test DSN (10 s deadline).
pg_ingest::Connection connect();

// The server's TCP address: the DSN host when it is a host name or address, else 127.0.0.1
// (the test server listens there too, on the DSN port).
std::string tcp_host();
std::string port();
std::string dbname();
std::string user();

// A port on 127.0.0.1 that nothing listens on (bound to pick it, then released).
int unused_tcp_port();

// A TCP listener on 127.0.0.1 that never speaks the PostgreSQL protocol.
//  - completes_handshake: the kernel accepts connections into the backlog; nobody reads them,
//    so a client waits for a server reply that never comes.
//  - drops_syn: the accept queue is filled first, so further SYNs are dropped and the client's
//    TCP connect itself hangs, as with a blackholed host.
class SilentListener {
  public:
    enum class Mode { completes_handshake, drops_syn };
    explicit SilentListener(Mode mode);
    ~SilentListener();
    SilentListener(const SilentListener&) = delete;
    SilentListener& operator=(const SilentListener&) = delete;

    int port() const { return m_port; }

  private:
    int m_fd = -1;
    int m_port = 0;
    std::vector<int> m_fillers;
};

// Milliseconds elapsed since `start`.
long long elapsed_ms(std::chrono::steady_clock::time_point start);

// The pg_ingest::Error that `body` throws; fails the calling test when it throws none.
pg_ingest::Error error_of(const std::function<void()>& body);

// A randomised test's seed: PG_INGEST_TEST_SEED when set, else a random one (print it).
std::uint32_t seed();

// The ColumnType of `table`.`column` as the catalog describes it; fails the calling test when
// the client does not support the type.
pg_ingest::ColumnType column_type(pg_ingest::Connection& connection, const std::string& table,
                                  const std::string& column);

// Appends a binary COPY row of two fields: int4 `id` and the encoded field `field` (as
// encode_field() writes it: length, then bytes).
void append_binary_row(std::string& data, std::uint32_t id, const std::string& field);

}  // namespace test
