// Progress reporting on stderr: a redrawn bar on a terminal, plain periodic lines otherwise.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace pg_ingest::cli {

// "1.5 MiB", "312 B"
std::string format_bytes(double bytes);
// "0:07", "1:02:03"
std::string format_duration(double seconds);

class Progress {
  public:
    enum class Style { bar, lines, none };

    // none when quiet; bar when stderr is a terminal; lines otherwise.
    static Style choose(bool quiet);
    // The period of plain lines: PG_INGEST_PROGRESS_INTERVAL seconds, default 10.
    static std::chrono::milliseconds line_interval();

    // Starts the reporting thread (unless `style` is none). `label` starts each report, e.g.
    // "load". `total_bytes`, when known, gives a percentage and an ETA.
    Progress(std::string label, Style style, std::optional<std::uint64_t> total_bytes);
    // Stops the thread; the bar line is cleared. Never throws.
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    // Thread-safe, lock-free.
    void add(std::uint64_t rows, std::uint64_t bytes) noexcept;
    // What is happening now when it is not row traffic ("waiting for job 12"); thread-safe.
    void set_status(std::string status);
    // Prints `line` on stderr, also without progress reporting (Style::none): a bar on screen is
    // cleared first and drawn again at the next redraw. Thread-safe; never throws.
    void log_line(const std::string& line) noexcept;
    // Stops reporting and clears the bar, so that a final summary line can follow.
    void stop() noexcept;

    std::uint64_t rows() const noexcept { return m_rows.load(); }
    std::uint64_t bytes() const noexcept { return m_bytes.load(); }
    double elapsed_seconds() const noexcept;

  private:
    void run();
    std::string render(bool for_terminal);

    std::string m_label;
    Style m_style;
    std::optional<std::uint64_t> m_total;
    std::chrono::steady_clock::time_point m_start;
    std::chrono::milliseconds m_period;  // between redraws / lines
    std::atomic<std::uint64_t> m_rows{0};
    std::atomic<std::uint64_t> m_bytes{0};

    std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_stopping = false;
    std::mutex m_print_mutex;  // one writer of stderr at a time: the bar and log lines
    bool m_drawn = false;      // a bar is on screen (under m_print_mutex while the thread runs)
    std::string m_status;
    std::thread m_thread;
};

}  // namespace pg_ingest::cli
