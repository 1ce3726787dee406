// Internal: the chunks of an AsyncLoader job, kept on local disk so that the job can be staged
// again after a transient failure of a staging connection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pg_ingest::detail {

// An unlinked temporary file in $TMPDIR (else /tmp), opened at the first append; nothing is
// left behind, even when the process dies. Not thread-safe. Move-only.
//
// Errors: append() and read() throw pg_ingest::Error 58030 (io_error) naming the directory
// and the system error (e.g. a full disk); the spool is then unchanged.
class ChunkSpool {
  public:
    struct Chunk {
        std::string data;
        std::int64_t number = 0;      // the caller's chunk number (ordered staging), else 0
        std::uint64_t first_row = 0;  // see StagingWorker::Task::first_row
    };

    ChunkSpool() = default;
    ChunkSpool(ChunkSpool&& other) noexcept;
    ChunkSpool& operator=(ChunkSpool&& other) noexcept;
    ChunkSpool(const ChunkSpool&) = delete;
    ChunkSpool& operator=(const ChunkSpool&) = delete;
    ~ChunkSpool();

    void append(const std::string& data, std::int64_t number, std::uint64_t first_row);
    std::size_t size() const noexcept { return m_entries.size(); }
    std::uint64_t bytes() const noexcept { return m_end; }
    Chunk read(std::size_t index) const;
    // Forgets every chunk and gives the disk space back; the file is kept for the next job.
    void clear();

  private:
    struct Entry {
        std::uint64_t offset = 0;
        std::uint64_t size = 0;
        std::int64_t number = 0;
        std::uint64_t first_row = 0;
    };
    int m_fd = -1;
    std::string m_directory;
    std::uint64_t m_end = 0;
    std::vector<Entry> m_entries;
};

}  // namespace pg_ingest::detail
