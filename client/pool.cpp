#include <pg_ingest/pool.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>

#include <libpq-fe.h>

namespace pg_ingest {

struct ConnectionPool::Lease::Shared {
    ConnectionOptions options;
    Settings settings;
    mutable std::mutex mutex;
    std::condition_variable returned;
    std::deque<std::unique_ptr<Connection>> idle;
    std::size_t total = 0;  // idle + leased + being opened
    std::size_t leased = 0;

    // Gives back a slot, and the session if it is healthy and idle: reset first, so that an
    // idle session holds nothing of its last lessee (advisory locks, LISTENs, temporary
    // tables, a role) while it waits, perhaps for good. The reset is a round trip bounded by
    // ping_timeout, outside the lock; a session that fails it, or does not answer in time, is
    // dropped instead.
    void put_back(std::unique_ptr<Connection> connection) noexcept {
        bool keep = connection && reusable(*connection);
        if (keep) {
            connection->set_deadline(Connection::Clock::time_point::max());  // the lessee's
            try {
                // The lessee's handler may refer to objects that die with its lease.
                connection->set_notice_handler({});
            } catch (...) {
            }
            keep = connection->reset_session(settings.ping_timeout);
        }
        std::unique_ptr<Connection> dropped;
        {
            std::lock_guard<std::mutex> lock(mutex);
            --leased;
            if (keep) {
                idle.push_back(std::move(connection));
            } else {
                dropped = std::move(connection);
                --total;
            }
        }
        returned.notify_one();
        // `dropped` closes outside the lock.
    }

    static bool reusable(const Connection& connection) noexcept {
        if (!connection.is_open()) {
            return false;
        }
        // Only an idle session may be shared: never one inside a transaction or a COPY.
        const auto* conn = static_cast<const PGconn*>(connection.native_handle());
        return PQtransactionStatus(conn) == PQTRANS_IDLE;
    }
};

ConnectionPool::Lease::Lease(std::shared_ptr<Shared> shared,
                             std::unique_ptr<Connection> connection) noexcept
    : m_shared(std::move(shared)), m_connection(std::move(connection)) {}

ConnectionPool::Lease::Lease(Lease&& other) noexcept = default;

ConnectionPool::Lease& ConnectionPool::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        release();
        m_shared = std::move(other.m_shared);
        m_connection = std::move(other.m_connection);
    }
    return *this;
}

ConnectionPool::Lease::~Lease() {
    release();
}

void ConnectionPool::Lease::discard() noexcept {
    if (m_connection) {
        m_connection->close();
    }
}

void ConnectionPool::Lease::release() noexcept {
    if (m_shared) {
        m_shared->put_back(std::move(m_connection));
        m_shared.reset();
    }
}

ConnectionPool::ConnectionPool(ConnectionOptions options, Settings settings)
    : m_shared(std::make_shared<Lease::Shared>()) {
    if (settings.max_active == 0) {
        throw std::invalid_argument("pg_ingest::ConnectionPool: max_active must be at least 1");
    }
    // A check with no time would fail every idle session: each acquire would connect anew.
    if (settings.ping_timeout <= std::chrono::milliseconds::zero()) {
        throw std::invalid_argument("pg_ingest::ConnectionPool: ping_timeout must be positive");
    }
    m_shared->options = std::move(options);
    m_shared->settings = settings;
}

ConnectionPool::ConnectionPool(ConnectionOptions options)
    : ConnectionPool(std::move(options), Settings()) {}

ConnectionPool::~ConnectionPool() {
    clear_idle();
}

ConnectionPool::Lease ConnectionPool::acquire(Clock::time_point deadline) {
    Lease::Shared& shared = *m_shared;
    std::unique_lock<std::mutex> lock(shared.mutex);
    // put_back() wakes one waiter: one that gives up (its deadline passed) with a session
    // idle or a slot free must wake the next, or that one waits for nothing.
    const auto give_up = [&](const std::string& why) {
        if (!shared.idle.empty() || shared.total < shared.settings.max_active) {
            shared.returned.notify_one();
        }
        lock.unlock();
        throw Error("timed out waiting for a pooled connection (" +
                        std::to_string(shared.settings.max_active) +
                        " connections at most; connectionmaxactive): " + why,
                    "08001", "", "", false);
    };
    while (true) {
        if (!shared.idle.empty()) {
            std::unique_ptr<Connection> connection = std::move(shared.idle.front());
            shared.idle.pop_front();
            ++shared.leased;
            lock.unlock();
            const auto remaining =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (remaining.count() <= 0) {
                // No time to check it: it stays idle for the next caller, not dropped unchecked.
                lock.lock();
                --shared.leased;
                shared.idle.push_front(std::move(connection));
                give_up("the deadline passed before an idle connection could be checked");
            }
            const auto ping_timeout = std::min(remaining, shared.settings.ping_timeout);
            // Only a check that it is alive: every idle session was reset when it came back
            // (put_back), and waiting changes nothing a lessee would see.
            if (connection->ping(ping_timeout)) {
                return Lease(m_shared, std::move(connection));
            }
            // Dead (or the deadline is too close to check it): drop it and try again.
            connection.reset();
            lock.lock();
            --shared.leased;
            --shared.total;
            if (Clock::now() >= deadline) {
                give_up("an idle connection was dead, and the deadline passed");
            }
            continue;
        }
        if (shared.total < shared.settings.max_active) {
            ++shared.total;
            ++shared.leased;
            lock.unlock();
            try {
                auto connection =
                    std::make_unique<Connection>(Connection::connect(shared.options, deadline));
                return Lease(m_shared, std::move(connection));
            } catch (...) {
                lock.lock();
                --shared.total;
                --shared.leased;
                lock.unlock();
                shared.returned.notify_one();
                throw;
            }
        }
        if (shared.returned.wait_until(lock, deadline) == std::cv_status::timeout &&
            shared.idle.empty() && shared.total >= shared.settings.max_active) {
            give_up("all in use");
        }
    }
}

std::size_t ConnectionPool::leased() const {
    std::lock_guard<std::mutex> lock(m_shared->mutex);
    return m_shared->leased;
}

std::size_t ConnectionPool::idle() const {
    std::lock_guard<std::mutex> lock(m_shared->mutex);
    return m_shared->idle.size();
}

std::size_t ConnectionPool::max_active() const noexcept {
    return m_shared->settings.max_active;
}

void ConnectionPool::clear_idle() noexcept {
    std::deque<std::unique_ptr<Connection>> dropped;
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        dropped.swap(m_shared->idle);
        m_shared->total -= dropped.size();
    }
    m_shared->returned.notify_all();
}

}  // namespace pg_ingest
