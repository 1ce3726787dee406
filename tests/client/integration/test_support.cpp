#include "test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>

#include <boost/test/unit_test.hpp>

namespace test {

namespace {

std::string value_or(const std::string& keyword, const std::string& fallback) {
    const auto value = options().get(keyword);
    return value && !value->empty() ? *value : fallback;
}

sockaddr_in loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

[[noreturn]] void system_error(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

int bound_port(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof(address);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        system_error("getsockname");
    }
    return ntohs(address.sin_port);
}

// Starts a non-blocking connect to 127.0.0.1:port; returns the socket.
int start_connect(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        system_error("socket");
    }
    const sockaddr_in address = loopback(port);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 &&
        errno != EINPROGRESS) {
        ::close(fd);
        system_error("connect");
    }
    return fd;
}

bool connected_within(int fd, int timeout_ms) {
    pollfd descriptor{fd, POLLOUT, 0};
    if (::poll(&descriptor, 1, timeout_ms) <= 0) {
        return false;
    }
    int error = 0;
    socklen_t length = sizeof(error);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    return error == 0;
}

}  // namespace

std::string dsn() {
    const char* value = std::getenv("PG_INGEST_TEST_DSN");
    if (value == nullptr || *value == '\0') {
        throw std::runtime_error(
            "PG_INGEST_TEST_DSN is not set: the integration tests need a running PostgreSQL "
            "server, e.g. PG_INGEST_TEST_DSN=\"host=/tmp/pg port=54329 dbname=postgres "
            "user=postgres\"");
    }
    return value;
}

pg_ingest::ConnectionOptions options() {
    return pg_ingest::ConnectionOptions(dsn());
}

pg_ingest::Connection connect() {
    return pg_ingest::Connection::connect(options(), std::chrono::seconds(10));
}

std::string tcp_host() {
    const std::string host = value_or("host", "");
    return host.empty() || host.front() == '/' || host.front() == '@' ? "127.0.0.1" : host;
}

std::string port() {
    return value_or("port", "5432");
}
std::string dbname() {
    return value_or("dbname", user());
}
std::string user() {
    const char* login = std::getenv("USER");
    return value_or("user", login != nullptr ? login : "postgres");
}

int unused_tcp_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        system_error("socket");
    }
    const sockaddr_in address = loopback(0);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
        ::close(fd);
        system_error("bind");
    }
    const int port = bound_port(fd);
    ::close(fd);  // nothing listens on it now
    return port;
}

SilentListener::SilentListener(Mode mode) {
    m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (m_fd < 0) {
        system_error("socket");
    }
    const sockaddr_in address = loopback(0);
    const int backlog = mode == Mode::drops_syn ? 0 : 16;
    if (::bind(m_fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(m_fd, backlog) != 0) {
        system_error("bind/listen");
    }
    m_port = bound_port(m_fd);
    if (mode == Mode::completes_handshake) {
        return;
    }
    // Fill the accept queue until a connect stops completing: from then on SYNs are dropped.
    for (int attempt = 0; attempt < 16; ++attempt) {
        const int fd = start_connect(m_port);
        m_fillers.push_back(fd);
        if (!connected_within(fd, 300)) {
            return;
        }
    }
    throw std::runtime_error("could not fill the listen backlog: connects keep completing");
}

SilentListener::~SilentListener() {
    for (const int fd : m_fillers) {
        ::close(fd);
    }
    if (m_fd >= 0) {
        ::close(m_fd);
    }
}

pg_ingest::Error error_of(const std::function<void()>& body) {
    try {
        body();
    } catch (const pg_ingest::Error& error) {
        return error;
    }
    BOOST_FAIL("expected pg_ingest::Error");
    return pg_ingest::Error("unreachable");
}

long long elapsed_ms(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
}

std::uint32_t seed() {
    if (const char* fixed = std::getenv("PG_INGEST_TEST_SEED")) {
        return static_cast<std::uint32_t>(std::strtoul(fixed, nullptr, 10));
    }
    return static_cast<std::uint32_t>(std::random_device{}());
}

pg_ingest::ColumnType column_type(pg_ingest::Connection& connection, const std::string& table,
                                  const std::string& column) {
    const pg_ingest::Result type = connection.execute_params(
        "SELECT a.atttypid, a.atttypmod, t.typelem, pg_catalog.format_type(a.atttypid, "
        "a.atttypmod) FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = "
        "a.atttypid WHERE a.attrelid = $1::regclass AND a.attname = $2",
        {table, column});
    BOOST_REQUIRE(type.rows() == 1u);
    pg_ingest::ColumnType out;
    BOOST_REQUIRE(pg_ingest::ColumnType::from_oid(
        static_cast<std::uint32_t>(std::stoul(*type.get(0, 0))), std::stoi(*type.get(0, 1)),
        static_cast<std::uint32_t>(std::stoul(*type.get(0, 2))), *type.get(0, 3), out));
    return out;
}

void append_binary_row(std::string& data, std::uint32_t id, const std::string& field) {
    const auto put32 = [&](std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            data += static_cast<char>((v >> shift) & 0xFF);
        }
    };
    data += std::string("\0\x02", 2);
    put32(4);
    put32(id);
    data += field;
}

}  // namespace test
