// pg_ingest::ConnectionPool — a bounded, thread-safe pool of Connections.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/export.hpp>

namespace pg_ingest {

// At most `max_active` sessions exist at once (leased + idle). Leases are RAII: returning one
// resets a healthy, idle session (Connection::reset_session: DISCARD ALL, and the notifications
// libpq already holds are dropped) and puts it back; a closed or still-in-transaction session,
// or one that fails the reset or does not answer it within ping_timeout, is discarded. So an
// idle session holds nothing of its last lessee (advisory locks, LISTENs, temporary tables, a
// role), and every lease starts from the session state at connect. Acquiring an idle session
// pings it (an empty query) and replaces it if it is dead. Cost: a lease of a pooled session
// takes two round trips, the ping when it is acquired and the reset when it returns (which the
// returning thread waits for). A lease's notice handler ends with the lease. Thread-safe. The
// pool's state is shared with its leases, so a Lease may outlive the ConnectionPool object.
class PG_INGEST_API ConnectionPool {
  public:
    using Clock = Connection::Clock;

    struct Settings {
        std::size_t max_active = 5;                    // connectionmaxactive
        std::chrono::milliseconds ping_timeout{5000};  // reset on return / ping on acquire
    };

    // Move-only ownership of one pooled Connection.
    class PG_INGEST_API Lease {
      public:
        Lease(Lease&& other) noexcept;
        // Returns this lease's own connection first, as the destructor does.
        Lease& operator=(Lease&& other) noexcept;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        // Returns the connection to the pool (or discards it), without the deadline the lessee
        // may have set on it (Connection::set_deadline); never throws. Blocks for the reset: one
        // round trip, at most the pool's ping_timeout.
        ~Lease();

        Connection& operator*() const noexcept { return *m_connection; }
        Connection* operator->() const noexcept { return m_connection.get(); }
        // Closes and drops the connection instead of returning it (e.g. after a protocol error).
        void discard() noexcept;

      private:
        friend class ConnectionPool;
        struct Shared;
        Lease(std::shared_ptr<Shared> shared, std::unique_ptr<Connection> connection) noexcept;
        void release() noexcept;

        std::shared_ptr<Shared> m_shared;
        std::unique_ptr<Connection> m_connection;
    };

    // No I/O: sessions are opened on demand. Throws std::invalid_argument if max_active is 0 or
    // ping_timeout is not positive.
    ConnectionPool(ConnectionOptions options, Settings settings);
    explicit ConnectionPool(ConnectionOptions options);
    ConnectionPool(const ConnectionPool&) = delete;
    ConnectionPool& operator=(const ConnectionPool&) = delete;
    // Closes idle sessions; leased ones close when their lease ends.
    ~ConnectionPool();

    // A healthy connection: an idle one (pinged first), a new one when fewer than max_active
    // exist, else waits for a lease to come back. Everything (waiting, pinging, connecting) ends
    // at `deadline`: then Error 08001, retryable, naming the pool size. Connection failures
    // throw the connect Error (08001, retryable).
    Lease acquire(Clock::time_point deadline);

    // Sessions leased out / idle right now.
    std::size_t leased() const;
    std::size_t idle() const;
    std::size_t max_active() const noexcept;
    // Drops every idle session (e.g. after a server restart).
    void clear_idle() noexcept;

  private:
    std::shared_ptr<Lease::Shared> m_shared;
};

}  // namespace pg_ingest
