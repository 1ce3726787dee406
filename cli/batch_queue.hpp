// A bounded queue of input batches between the reading thread and the loading threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common.hpp"
#include "records.hpp"

namespace pg_ingest::cli {

// A bounded queue of batches between the reader and the loading threads.
class BatchQueue {
  public:
    explicit BatchQueue(std::size_t capacity) : m_capacity(capacity) {}

    // False when the queue was closed (the load is stopping).
    bool push(Batch batch) {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_changed.wait(lock, [this] { return m_closed || m_items.size() < m_capacity; });
        if (m_closed) {
            return false;
        }
        m_items.push_back(std::move(batch));
        m_changed.notify_all();
        return true;
    }
    // False when closed and empty.
    bool pop(Batch& batch) {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_changed.wait(lock, [this] { return m_closed || !m_items.empty(); });
        if (m_items.empty()) {
            return false;
        }
        batch = std::move(m_items.front());
        m_items.pop_front();
        m_changed.notify_all();
        return true;
    }
    // No more pushes; `discard` also drops what is queued (after a failure).
    void close(bool discard) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_closed = true;
        if (discard) {
            m_items.clear();
        }
        m_changed.notify_all();
    }

  private:
    std::size_t m_capacity;
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::deque<Batch> m_items;
    bool m_closed = false;
};

// The reading side of a parallel load: pushes every batch of `reader` into `queue`, closes it,
// joins the loading `threads`, and rethrows `failure` — the first error, recorded through `fail`
// by a loader or here by the reader (which also discards what is still queued). On SIGINT or
// SIGTERM no further batch is started (loaders check interrupted() too): the ones in flight
// commit or roll back, then this throws.
inline void feed_and_join(InputReader& reader, std::uint64_t batch_rows, std::size_t batch_bytes,
                          BatchQueue& queue, std::vector<std::thread>& threads,
                          const std::function<void(std::exception_ptr)>& fail,
                          const std::exception_ptr& failure) {
    try {
        Batch batch;
        while (!interrupted() && reader.next(batch, batch_rows, batch_bytes)) {
            if (!queue.push(std::move(batch))) {
                break;  // a loader failed or saw the interrupt
            }
            batch = Batch();
        }
        queue.close(interrupted());
    } catch (...) {
        fail(std::current_exception());
        queue.close(true);
    }
    for (auto& thread : threads) {
        thread.join();
    }
    if (failure) {
        std::rethrow_exception(failure);
    }
    if (interrupted()) {
        throw std::runtime_error(
            "interrupted by a signal: no further batch was started; the batches in flight "
            "committed or were rolled back");
    }
}

}  // namespace pg_ingest::cli
