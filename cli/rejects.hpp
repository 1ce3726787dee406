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
// A regular file (or a new one) is written as a temporary next to it and renamed over `path` by
// close(keep = true): a run that fails before loading anything leaves the previous file as it
// was. Other files (a device, a pipe) are written directly.
class RejectSink {
  public:
    // Creates the temporary now, so that an unwritable directory fails before loading; an empty
    // path only counts. Refuses a path that is one of `inputs`' sources. Throws
    // std::runtime_error.
    RejectSink(const std::string& path, const InputReader& inputs);
    // Removes the temporary unless close(true) renamed it.
    ~RejectSink();
    RejectSink(const RejectSink&) = delete;
    RejectSink& operator=(const RejectSink&) = delete;

    // Adds a row; it reaches the file at the next flush().
    void add(const RecordOrigin& origin, const std::string& sqlstate, const std::string& message,
             const std::string& raw_row);
    // Writes the rows added so far, whole lines only: called when their unit has committed, so
    // that a run that stops (a signal, a later failure) leaves every committed unit's rejects.
    void flush();
    // Flushes and closes; `keep`: put the file in place (else a temporary is removed and an
    // existing file stays). Throws std::runtime_error on a write error.
    void close(bool keep = true);
    std::uint64_t count() const;

  private:
    void write_pending();  // with m_mutex held

    std::string m_path;
    std::string m_temp;  // empty: written at m_path directly
    std::string m_final;
    std::FILE* m_file = nullptr;
    std::string m_pending;
    bool m_failed = false;
    mutable std::mutex m_mutex;
    std::uint64_t m_count = 0;
};

// A CSV field, quoted when needed ("" doubles a quote).
std::string csv_field(const std::string& text, bool always_quote = false);

}  // namespace pg_ingest::cli
