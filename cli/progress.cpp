#include "progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace pg_ingest::cli {

std::string format_bytes(double bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int unit = 0;
    while (bytes >= 1024 && unit < 4) {
        bytes /= 1024;
        ++unit;
    }
    char text[32];
    std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
    return text;
}

std::string format_duration(double seconds) {
    const long long total = std::llround(std::max(seconds, 0.0));
    char text[32];
    if (total >= 3600) {
        std::snprintf(text, sizeof(text), "%lld:%02lld:%02lld", total / 3600, total / 60 % 60,
                      total % 60);
    } else {
        std::snprintf(text, sizeof(text), "%lld:%02lld", total / 60, total % 60);
    }
    return text;
}

Progress::Style Progress::choose(bool quiet) {
    if (quiet) {
        return Style::none;
    }
    return ::isatty(STDERR_FILENO) == 1 ? Style::bar : Style::lines;
}

std::chrono::milliseconds Progress::line_interval() {
    if (const char* value = std::getenv("PG_INGEST_PROGRESS_INTERVAL")) {
        const double seconds = std::strtod(value, nullptr);
        if (seconds > 0) {
            return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
        }
    }
    return std::chrono::seconds(10);
}

Progress::Progress(std::string label, Style style, std::optional<std::uint64_t> total_bytes)
    : m_label(std::move(label)),
      m_style(style),
      m_total(total_bytes),
      m_start(std::chrono::steady_clock::now()),
      // Read here, not on the progress thread: a load may set TZ (setenv) while that thread runs.
      m_period(m_style == Style::bar ? std::chrono::milliseconds(200) : line_interval()) {
    if (m_style != Style::none) {
        m_thread = std::thread([this] { run(); });
    }
}

Progress::~Progress() {
    stop();
}

void Progress::add(std::uint64_t rows, std::uint64_t bytes) noexcept {
    m_rows.fetch_add(rows, std::memory_order_relaxed);
    m_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void Progress::set_status(std::string status) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_status = std::move(status);
}

double Progress::elapsed_seconds() const noexcept {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
}

void Progress::stop() noexcept {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (m_stopping) {
            return;
        }
        m_stopping = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
    std::lock_guard<std::mutex> print(m_print_mutex);
    if (m_drawn) {
        std::fputs("\r\033[K", stderr);  // clear the bar line
        std::fflush(stderr);
        m_drawn = false;
    }
}

void Progress::log_line(const std::string& line) noexcept {
    std::lock_guard<std::mutex> print(m_print_mutex);
    if (m_drawn) {
        std::fputs("\r\033[K", stderr);
        m_drawn = false;
    }
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
}

std::string Progress::render(bool for_terminal) {
    const double seconds = elapsed_seconds();
    const double bytes = static_cast<double>(m_bytes.load());
    const double rate = seconds > 0 ? bytes / seconds : 0;
    std::string line = m_label + ": ";
    if (for_terminal && m_total && *m_total > 0) {
        const double fraction = std::min(1.0, bytes / static_cast<double>(*m_total));
        const int width = 24;
        const int filled = static_cast<int>(fraction * width);
        line += "[" + std::string(static_cast<std::size_t>(filled), '#') +
                std::string(static_cast<std::size_t>(width - filled), '.') + "] ";
    }
    char numbers[160];
    std::snprintf(numbers, sizeof(numbers), "%llu rows, %s, %s/s",
                  static_cast<unsigned long long>(m_rows.load()), format_bytes(bytes).c_str(),
                  format_bytes(rate).c_str());
    line += numbers;
    if (m_total && *m_total > 0) {
        const double fraction = std::min(1.0, bytes / static_cast<double>(*m_total));
        char percent[32];
        std::snprintf(percent, sizeof(percent), ", %.0f%%", fraction * 100);
        line += percent;
        if (rate > 0 && fraction < 1.0) {
            line += ", ETA " + format_duration((static_cast<double>(*m_total) - bytes) / rate);
        }
    }
    line += ", " + format_duration(seconds) + " elapsed";
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (!m_status.empty()) {
            line += " (" + m_status + ")";
        }
    }
    return line;
}

void Progress::run() {
    const bool terminal = m_style == Style::bar;
    std::unique_lock<std::mutex> lock(m_mutex);
    while (!m_wake.wait_for(lock, m_period, [this] { return m_stopping; })) {
        lock.unlock();
        const std::string line = render(terminal);
        {
            std::lock_guard<std::mutex> print(m_print_mutex);
            if (terminal) {
                std::fprintf(stderr, "\r%s\033[K", line.c_str());
                m_drawn = true;
            } else {
                std::fprintf(stderr, "%s\n", line.c_str());
            }
            std::fflush(stderr);
        }
        lock.lock();
    }
}

}  // namespace pg_ingest::cli
