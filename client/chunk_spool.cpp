#include "chunk_spool.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include <pg_ingest/error.hpp>

namespace pg_ingest::detail {

namespace {

Error spool_error(const std::string& what, const std::string& directory, int error) {
    return Error("AsyncLoader: cannot " + what + " the retry spool in " + directory + ": " +
                     std::strerror(error),
                 "58030", "",
                 "The loader keeps each job's chunks in a temporary file so that a lost staging "
                 "connection can be retried: free space there, set TMPDIR to another "
                 "directory, or set maxretrytimes=0 to stage without a spool (and without "
                 "retries).",
                 true);
}

std::string spool_directory() {
    const char* tmpdir = std::getenv("TMPDIR");
    return tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
}

}  // namespace

ChunkSpool::ChunkSpool(ChunkSpool&& other) noexcept
    : m_fd(std::exchange(other.m_fd, -1)),
      m_directory(std::move(other.m_directory)),
      m_end(std::exchange(other.m_end, 0)),
      m_entries(std::move(other.m_entries)) {}

ChunkSpool& ChunkSpool::operator=(ChunkSpool&& other) noexcept {
    if (this != &other) {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
        m_fd = std::exchange(other.m_fd, -1);
        m_directory = std::move(other.m_directory);
        m_end = std::exchange(other.m_end, 0);
        m_entries = std::move(other.m_entries);
    }
    return *this;
}

ChunkSpool::~ChunkSpool() {
    if (m_fd >= 0) {
        ::close(m_fd);
    }
}

void ChunkSpool::append(const std::string& data, std::int64_t number, std::uint64_t first_row) {
    if (m_fd < 0) {
        m_directory = spool_directory();
        std::string path = m_directory + "/pg_ingest-spool-XXXXXX";
        const int fd = ::mkostemp(path.data(), O_CLOEXEC);
        if (fd < 0) {
            throw spool_error("create", m_directory, errno);
        }
        ::unlink(path.c_str());  // gone from the directory; the space is freed at close
        m_fd = fd;
    }
    std::uint64_t written = 0;
    while (written < data.size()) {
        const ssize_t n = ::pwrite(m_fd, data.data() + written, data.size() - written,
                                   static_cast<off_t>(m_end + written));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const int error = n < 0 ? errno : EIO;
            // Give back what this chunk took; the spool stays as it was.
            if (::ftruncate(m_fd, static_cast<off_t>(m_end)) != 0) {
                // nothing more to do: the next append writes over it
            }
            throw spool_error("write", m_directory, error);
        }
        written += static_cast<std::uint64_t>(n);
    }
    m_entries.push_back(Entry{m_end, data.size(), number, first_row});
    m_end += data.size();
}

ChunkSpool::Chunk ChunkSpool::read(std::size_t index) const {
    const Entry& entry = m_entries.at(index);
    Chunk chunk;
    chunk.number = entry.number;
    chunk.first_row = entry.first_row;
    chunk.data.resize(entry.size);
    std::uint64_t done = 0;
    while (done < entry.size) {
        const ssize_t n = ::pread(m_fd, chunk.data.data() + done, entry.size - done,
                                  static_cast<off_t>(entry.offset + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw spool_error("read", m_directory, n < 0 ? errno : EIO);
        }
        done += static_cast<std::uint64_t>(n);
    }
    return chunk;
}

void ChunkSpool::clear() {
    m_entries.clear();
    m_end = 0;
    if (m_fd >= 0 && ::ftruncate(m_fd, 0) != 0) {
        // The space is given back when the file is closed; offsets restart at 0 regardless.
    }
}

}  // namespace pg_ingest::detail
