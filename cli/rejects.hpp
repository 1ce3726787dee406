// The reject file of pg_ingest load: one CSV line per rejected row, with its error.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

#include "records.hpp"

namespace pg_ingest::cli {

// CSV with a header: source,line,record,sqlstate,message,raw_row. Thread-safe.
//
// The file is opened (truncated in place: its mode, owner and links stay) only when the first
// unit has committed, or by close(true): a run that fails before loading anything leaves the
// previous file as it was.
class RejectSink {
  public:
    // Checks now that the file can be written, so that a bad path fails before loading; an
    // empty path only counts. Refuses a path that is one of `inputs`' sources. Throws
    // std::runtime_error.
    RejectSink(const std::string& path, const InputReader& inputs);
    ~RejectSink();
    RejectSink(const RejectSink&) = delete;
    RejectSink& operator=(const RejectSink&) = delete;

    // Adds a row; it reaches the file at the next flush().
    void add(const RecordOrigin& origin, const std::string& sqlstate, const std::string& message,
             const std::string& raw_row);
    // Writes the rows added so far, whole lines only: called when their unit has committed, so
    // that a run that stops (a signal, a later failure) leaves every committed unit's rejects.
    // Throws std::runtime_error when the file cannot be opened.
    void flush();
    // Flushes and closes; `keep`: write the file even when nothing committed (else a file not
    // opened yet is left as it was). Throws std::runtime_error on a write error.
    void close(bool keep = true);
    std::uint64_t count() const;

  private:
    void write_pending();  // with m_mutex held; opens the file first

    std::string m_path;
    std::FILE* m_file = nullptr;
    std::string m_pending;
    bool m_failed = false;
    mutable std::mutex m_mutex;
    std::uint64_t m_count = 0;
};

// A CSV field, quoted when needed ("" doubles a quote).
std::string csv_field(const std::string& text, bool always_quote = false);

}  // namespace pg_ingest::cli
