// The reject file of pg_ingest load: one CSV line per rejected row, with its error.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

#include "records.hpp"

namespace pg_ingest::cli {

// CSV with a header: source,line,record,sqlstate,message,raw_row. Thread-safe.
class RejectSink {
  public:
    // Creates (truncates) `path` now, so an unwritable path fails before loading; an empty path
    // only counts. Throws std::runtime_error.
    explicit RejectSink(const std::string& path);
    ~RejectSink();
    RejectSink(const RejectSink&) = delete;
    RejectSink& operator=(const RejectSink&) = delete;

    void add(const RecordOrigin& origin, const std::string& sqlstate, const std::string& message,
             const std::string& raw_row);
    // Flushes and closes; throws std::runtime_error on a write error.
    void close();
    std::uint64_t count() const;

  private:
    std::string m_path;
    std::FILE* m_file = nullptr;
    mutable std::mutex m_mutex;
    std::uint64_t m_count = 0;
};

// A CSV field, quoted when needed ("" doubles a quote).
std::string csv_field(const std::string& text, bool always_quote = false);

}  // namespace pg_ingest::cli
