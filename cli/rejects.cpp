#include "rejects.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace pg_ingest::cli {

std::string csv_field(const std::string& text, bool always_quote) {
    if (!always_quote && !text.empty() && text.find_first_of(",\"\r\n") == std::string::npos) {
        return text;
    }
    std::string quoted = "\"";
    for (const char c : text) {
        quoted += c;
        if (c == '"') {
            quoted += '"';
        }
    }
    return quoted + "\"";
}

RejectSink::RejectSink(const std::string& path, const InputReader& inputs) : m_path(path) {
    if (path.empty()) {
        return;
    }
    struct stat info {};
    const bool exists = ::stat(path.c_str(), &info) == 0;
    if (exists) {
        if (const auto source = inputs.source_of(static_cast<std::uint64_t>(info.st_dev),
                                                 static_cast<std::uint64_t>(info.st_ino))) {
            throw std::runtime_error("--reject-file '" + path + "' is the input file '" + *source +
                                     "': name another file for the rejects");
        }
    }
    // Writable, tried before anything is loaded (the file itself is written only once rows are
    // committed, so that a run that commits nothing leaves an earlier file as it was): an
    // existing file opened for appending (its contents untouched), else created and removed.
    const auto refuse = [&](const std::string& why) {
        throw std::runtime_error("cannot write reject file '" + path + "': " + why);
    };
    if (exists && S_ISDIR(info.st_mode)) {
        refuse("it is a directory");
    }
    if (exists && !S_ISFIFO(info.st_mode)) {  // opening a FIFO would wait for its reader
        const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0) {
            refuse(std::strerror(errno));
        }
        ::close(fd);
    } else if (!exists) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            refuse(std::strerror(errno));
        }
        ::close(fd);
        ::unlink(path.c_str());
    }
    m_pending = "source,line,record,sqlstate,message,raw_row\n";
}

RejectSink::~RejectSink() {
    if (m_file != nullptr) {
        std::fclose(m_file);
    }
}

void RejectSink::add(const RecordOrigin& origin, const std::string& sqlstate,
                     const std::string& message, const std::string& raw_row) {
    std::lock_guard<std::mutex> lock(m_mutex);
    ++m_count;
    if (m_path.empty()) {
        return;
    }
    m_pending +=
        csv_field(origin.source) + "," + (origin.line > 0 ? std::to_string(origin.line) : "") +
        "," + (origin.record > 0 ? std::to_string(origin.record) : "") + "," + csv_field(sqlstate) +
        "," + csv_field(message, true) + "," + csv_field(raw_row, true) + "\n";
}

void RejectSink::write_pending() {
    if (m_path.empty()) {
        return;
    }
    if (m_file == nullptr) {
        m_file = std::fopen(m_path.c_str(), "wb");
        if (m_file == nullptr) {
            throw std::runtime_error("cannot open reject file '" + m_path +
                                     "': " + std::strerror(errno));
        }
    }
    if (m_pending.empty()) {
        return;
    }
    if (std::fwrite(m_pending.data(), 1, m_pending.size(), m_file) != m_pending.size() ||
        std::fflush(m_file) != 0) {
        m_failed = true;
    }
    m_pending.clear();
}

void RejectSink::flush() {
    std::lock_guard<std::mutex> lock(m_mutex);
    write_pending();
}

void RejectSink::close(bool keep) {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_file == nullptr && !keep) {
        return;  // nothing committed: the previous file stays
    }
    write_pending();
    if (m_file == nullptr) {
        return;
    }
    const bool failed = m_failed || std::ferror(m_file) != 0;
    const bool close_failed = std::fclose(m_file) != 0;
    m_file = nullptr;
    if (failed || close_failed) {
        throw std::runtime_error("error writing reject file '" + m_path + "'");
    }
}

std::uint64_t RejectSink::count() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_count;
}

}  // namespace pg_ingest::cli
