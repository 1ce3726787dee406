// Internal: breaking off a libpq session from another thread.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/error.hpp>

namespace pg_ingest::detail {

// A close-on-exec duplicate of a connection's socket, ours to close: shutting it down from any
// thread ends a wait on that session at once (the waiter sees a hang-up), and, unlike libpq's
// own descriptor, its number cannot be closed and reused under us meanwhile. Close it with the
// connection: the session stays open on the server while the duplicate does. Move-only.
class SocketBreaker {
  public:
    // Throws Error when the connection has no socket or the descriptor cannot be duplicated.
    explicit SocketBreaker(Connection& connection) {
        const int socket = PQsocket(static_cast<PGconn*>(connection.native_handle()));
        m_socket = socket >= 0 ? ::fcntl(socket, F_DUPFD_CLOEXEC, 0) : -1;
        if (m_socket < 0) {
            throw Error("could not duplicate a connection's socket");
        }
    }
    ~SocketBreaker() {
        if (m_socket >= 0) {
            ::close(m_socket);
        }
    }
    SocketBreaker(SocketBreaker&& other) noexcept : m_socket(other.m_socket) {
        other.m_socket = -1;
    }
    SocketBreaker& operator=(SocketBreaker&&) = delete;
    SocketBreaker(const SocketBreaker&) = delete;
    SocketBreaker& operator=(const SocketBreaker&) = delete;

    // Shuts the session's socket down both ways; never throws.
    void break_off() const noexcept { ::shutdown(m_socket, SHUT_RDWR); }

  private:
    int m_socket = -1;
};

}  // namespace pg_ingest::detail
