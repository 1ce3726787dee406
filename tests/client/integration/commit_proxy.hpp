// A TCP proxy in front of the test server that breaks one connection around a COMMIT, to test
// what a client does when it cannot know whether its transaction committed.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pg_ingest/connection_options.hpp>

namespace test {

class CommitProxy {
  public:
    enum class Cut {
        before_commit,  // the client's COMMIT never reaches the server: the transaction aborts
        after_commit,   // the server commits; its reply is dropped and the connection closed
        after_commit_then_refuse,  // as after_commit, then new connections are refused too
    };

    // Listens on 127.0.0.1 (an ephemeral port) and forwards to the test server's TCP address.
    CommitProxy();
    // Closes every connection and joins the forwarding threads.
    ~CommitProxy();
    CommitProxy(const CommitProxy&) = delete;
    CommitProxy& operator=(const CommitProxy&) = delete;

    // The next simple-protocol "COMMIT" that passes through is cut this way (once).
    void arm(Cut cut);
    // How many cuts happened.
    int cuts() const { return m_cuts.load(); }
    // While refusing, a new connection is closed as soon as it is accepted.
    void refuse(bool on) { m_refusing = on; }
    // The test DSN pointed at the proxy (TCP, no SSL/GSS negotiation to parse).
    pg_ingest::ConnectionOptions options() const;

  private:
    void accept_loop();
    void forward(int client);

    int m_listener = -1;
    int m_port = 0;
    std::atomic<bool> m_stopping{false};
    std::atomic<int> m_armed{-1};
    std::atomic<int> m_cuts{0};
    std::atomic<bool> m_refusing{false};
    std::thread m_acceptor;
    std::mutex m_mutex;
    std::vector<std::thread> m_workers;
};

}  // namespace test
