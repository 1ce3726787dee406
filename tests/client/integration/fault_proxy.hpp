// A TCP proxy in front of the test server that breaks one connection: around a COMMIT, to test
// what a client does when it cannot know whether its transaction committed; or after a chosen
// statement, which the server runs while the client hears nothing more (a silent network).
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pg_ingest/connection_options.hpp>

namespace test {

class FaultProxy {
  public:
    enum class Cut {
        before_commit,  // the client's COMMIT never reaches the server: the transaction aborts
        after_commit,   // the server commits; its reply is dropped and the connection closed
        after_commit_then_refuse,  // as after_commit, then new connections are refused too
    };

    // Listens on 127.0.0.1 (an ephemeral port) and forwards to the test server's TCP address.
    FaultProxy();
    // Closes every connection and joins the forwarding threads.
    ~FaultProxy();
    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    // The next simple-protocol "COMMIT" that passes through is cut this way (once).
    void arm(Cut cut);
    // The next statement (simple Query or Parse message) whose text contains `pattern` is
    // forwarded, and then its connection goes silent (once): nothing more is forwarded either
    // way. The client's side stays open until the client closes it, the server's until the
    // proxy is destroyed (as in a network partition, the server never hears that the client
    // left). Counts as a cut.
    void arm_silence(std::string pattern);
    // Counts the statements (Query or Parse messages) whose text contains `pattern`, from now.
    void count(std::string pattern);
    int counted() const { return m_counted.load(); }
    // How many cuts happened.
    int cuts() const { return m_cuts.load(); }
    // While refusing, a new connection is closed as soon as it is accepted.
    void refuse(bool on) { m_refusing = on; }
    // While holding, a new connection is accepted and never answered (a server gone silent):
    // a connect through the proxy hangs until its own bound, or until the proxy is destroyed.
    void hold(bool on) { m_holding = on; }
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
    std::atomic<bool> m_holding{false};
    std::mutex m_pattern_mutex;  // guards the two patterns
    std::string m_silence;       // armed when not empty
    std::string m_count;
    std::atomic<int> m_counted{0};
    std::thread m_acceptor;
    std::mutex m_mutex;
    std::vector<std::thread> m_workers;
    std::vector<int> m_held;  // connections accepted while holding (guarded by m_mutex)
};

}  // namespace test
