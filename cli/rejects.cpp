#include "rejects.hpp"

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
    if (exists && !S_ISREG(info.st_mode)) {
        m_file = std::fopen(path.c_str(), "wb");
        if (m_file == nullptr) {
            throw std::runtime_error("cannot open reject file '" + path +
                                     "': " + std::strerror(errno));
        }
    } else {
        // Renamed over the file a symbolic link points at, not over the link.
        m_final = path;
        if (exists) {
            if (char* real = ::realpath(path.c_str(), nullptr)) {
                m_final = real;
                std::free(real);
            }
        }
        const auto slash = m_final.rfind('/');
        m_temp = m_final.substr(0, slash == std::string::npos ? 0 : slash + 1) + "." +
                 m_final.substr(slash == std::string::npos ? 0 : slash + 1) + ".XXXXXX";
        const int fd = ::mkstemp(m_temp.data());
        if (fd < 0) {
            const int error = errno;
            m_temp.clear();
            throw std::runtime_error("cannot create reject file '" + path +
                                     "' (a temporary next to it): " + std::strerror(error));
        }
        // mkstemp() makes it private; give it the mode fopen() would.
        const mode_t mask = ::umask(0);
        ::umask(mask);
        if (::fchmod(fd, 0666 & ~mask) != 0 || (m_file = ::fdopen(fd, "wb")) == nullptr) {
            const int error = errno;
            ::close(fd);
            ::unlink(m_temp.c_str());
            m_temp.clear();
            throw std::runtime_error("cannot create reject file '" + path +
                                     "': " + std::strerror(error));
        }
    }
    m_pending = "source,line,record,sqlstate,message,raw_row\n";
    write_pending();
}

RejectSink::~RejectSink() {
    if (m_file != nullptr) {
        std::fclose(m_file);
    }
    if (!m_temp.empty()) {
        ::unlink(m_temp.c_str());
    }
}

void RejectSink::add(const RecordOrigin& origin, const std::string& sqlstate,
                     const std::string& message, const std::string& raw_row) {
    std::lock_guard<std::mutex> lock(m_mutex);
    ++m_count;
    if (m_file == nullptr) {
        return;
    }
    m_pending +=
        csv_field(origin.source) + "," + (origin.line > 0 ? std::to_string(origin.line) : "") +
        "," + (origin.record > 0 ? std::to_string(origin.record) : "") + "," + csv_field(sqlstate) +
        "," + csv_field(message, true) + "," + csv_field(raw_row, true) + "\n";
    if (m_pending.size() >= (1u << 20)) {
        write_pending();
    }
}

void RejectSink::write_pending() {
    if (m_file == nullptr || m_pending.empty()) {
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
    if (m_file == nullptr) {
        return;
    }
    write_pending();
    const bool failed = m_failed || std::ferror(m_file) != 0;
    const bool close_failed = std::fclose(m_file) != 0;
    m_file = nullptr;
    if (failed || close_failed) {
        throw std::runtime_error("error writing reject file '" + m_path + "'");
    }
    if (!m_temp.empty()) {
        const std::string temp = std::move(m_temp);
        m_temp.clear();
        if (!keep) {
            ::unlink(temp.c_str());
        } else if (std::rename(temp.c_str(), m_final.c_str()) != 0) {
            const int error = errno;
            ::unlink(temp.c_str());
            throw std::runtime_error("cannot replace reject file '" + m_path +
                                     "': " + std::strerror(error));
        }
    }
}

std::uint64_t RejectSink::count() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_count;
}

}  // namespace pg_ingest::cli
