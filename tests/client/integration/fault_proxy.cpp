#include "fault_proxy.hpp"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_support.hpp"

namespace test {

namespace {

std::uint32_t read_be32(const char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return ntohl(v);
}

bool send_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

int connect_server() {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(tcp_host().c_str(), port().c_str(), &hints, &found) != 0) {
        return -1;
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
        ::close(fd);
        ::freeaddrinfo(found);
        return -1;
    }
    ::freeaddrinfo(found);
    return fd;
}

}  // namespace

FaultProxy::FaultProxy() {
    m_listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (m_listener < 0 ||
        ::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(m_listener, 16) != 0 ||
        ::getsockname(m_listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        throw std::runtime_error("commit proxy: cannot listen");
    }
    m_port = ntohs(address.sin_port);
    m_acceptor = std::thread([this] { accept_loop(); });
}

FaultProxy::~FaultProxy() {
    m_stopping = true;
    m_acceptor.join();
    ::close(m_listener);
    std::lock_guard<std::mutex> lock(m_mutex);
    for (auto& worker : m_workers) {
        worker.join();
    }
    for (const int fd : m_held) {
        ::close(fd);
    }
}

void FaultProxy::arm(Cut cut) {
    m_armed = static_cast<int>(cut);
}

void FaultProxy::arm_silence(std::string pattern) {
    std::lock_guard<std::mutex> lock(m_pattern_mutex);
    m_silence = std::move(pattern);
}

void FaultProxy::count(std::string pattern) {
    std::lock_guard<std::mutex> lock(m_pattern_mutex);
    m_count = std::move(pattern);
    m_counted = 0;
}

pg_ingest::ConnectionOptions FaultProxy::options() const {
    pg_ingest::ConnectionOptions options = test::options();
    options.set("host", "127.0.0.1");
    options.set("port", std::to_string(m_port));
    options.set("sslmode", "disable");
    options.set("gssencmode", "disable");
    return options;
}

void FaultProxy::accept_loop() {
    while (!m_stopping) {
        pollfd p{m_listener, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) {
            continue;
        }
        const int client = ::accept(m_listener, nullptr, nullptr);
        if (client < 0) {
            continue;
        }
        if (m_refusing) {
            ::close(client);
            continue;
        }
        std::lock_guard<std::mutex> lock(m_mutex);
        if (m_holding) {
            m_held.push_back(client);
            continue;
        }
        m_workers.emplace_back([this, client] { forward(client); });
    }
}

// Forwards bytes both ways. The client's stream is cut into protocol messages (the first one,
// the startup packet, has no type byte) so that a COMMIT can be recognised and cut.
void FaultProxy::forward(int client) {
    const int server = connect_server();
    if (server < 0) {
        ::close(client);
        return;
    }
    std::string pending;  // client bytes not yet forming a whole message
    bool started = false;
    bool muted = false;   // arm_silence's statement seen: the server is no longer read
    bool silent = false;  // ... and it was sent whole: nothing is forwarded any more
    char buffer[65536];
    bool open = true;
    while (open && !m_stopping) {
        pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
        if (::poll(fds, muted ? 1 : 2, 50) <= 0) {
            continue;
        }
        if (silent) {
            open = ::recv(client, buffer, sizeof buffer, 0) > 0;  // dropped
            if (!open) {
                // A partition: the server never hears that the client left. Its side stays
                // open until the proxy is destroyed.
                ::close(client);
                while (!m_stopping) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                }
                ::close(server);
                return;
            }
            continue;
        }
        if (!muted && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            const ssize_t n = ::recv(server, buffer, sizeof buffer, 0);
            open = n > 0 && send_all(client, buffer, static_cast<std::size_t>(n));
        }
        if (!open || (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
            continue;
        }
        const ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
        if (n <= 0) {
            break;
        }
        pending.append(buffer, static_cast<std::size_t>(n));
        std::size_t at = 0;
        while (open) {
            const std::size_t header = started ? 5 : 4;
            if (pending.size() - at < header) {
                break;
            }
            const std::size_t size =
                (started ? 1 : 0) + read_be32(pending.data() + at + header - 4);
            if (pending.size() - at < size) {
                break;
            }
            const bool statement = started && (pending[at] == 'Q' || pending[at] == 'P');
            bool silence = false;
            if (statement) {
                std::lock_guard<std::mutex> lock(m_pattern_mutex);
                const auto contains = [&](const std::string& pattern) {
                    return !pattern.empty() &&
                           std::string_view(pending.data() + at, size).find(pattern) !=
                               std::string_view::npos;
                };
                m_counted += contains(m_count) ? 1 : 0;
                silence = contains(m_silence);
                if (silence) {
                    m_silence.clear();
                }
            }
            if (silence) {
                ++m_cuts;
                muted = true;  // the server's answer is never read
            }
            if (muted && started && (pending[at] == 'Q' || pending[at] == 'S')) {
                // The statement is complete (a Query, or the Sync that ends Parse, Bind,
                // Execute): forward it, then drop whatever the client sends after it.
                send_all(server, pending.data() + at, size);
                silent = true;
                at = pending.size();
                break;
            }
            const bool commit = started && pending[at] == 'Q' &&
                                pending.compare(at + 5, size - 5, std::string("COMMIT\0", 7)) == 0;
            int armed = m_armed.load();
            if (commit && armed >= 0 && m_armed.compare_exchange_strong(armed, -1)) {
                if (static_cast<Cut>(armed) != Cut::before_commit) {
                    // Let the server commit, then swallow its reply up to ReadyForQuery.
                    send_all(server, pending.data() + at, size);
                    std::string reply;
                    std::size_t message = 0;
                    bool ready = false;
                    while (!ready) {
                        const ssize_t got = ::recv(server, buffer, sizeof buffer, 0);
                        if (got <= 0) {
                            break;
                        }
                        reply.append(buffer, static_cast<std::size_t>(got));
                        while (!ready && reply.size() - message >= 5) {
                            ready = reply[message] == 'Z';
                            message += 1 + read_be32(reply.data() + message + 1);
                        }
                    }
                }
                if (static_cast<Cut>(armed) == Cut::after_commit_then_refuse) {
                    m_refusing = true;
                }
                ++m_cuts;
                open = false;
                break;
            }
            open = send_all(server, pending.data() + at, size);
            started = true;
            at += size;
        }
        pending.erase(0, at);
    }
    ::close(client);
    ::close(server);
}

}  // namespace test
