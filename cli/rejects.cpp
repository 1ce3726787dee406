#include "rejects.hpp"

#include <cerrno>
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

RejectSink::RejectSink(const std::string& path) : m_path(path) {
    if (path.empty()) {
        return;
    }
    m_file = std::fopen(path.c_str(), "wb");
    if (m_file == nullptr) {
        throw std::runtime_error("cannot create reject file '" + path +
                                 "': " + std::strerror(errno));
    }
    std::fputs("source,line,record,sqlstate,message,raw_row\n", m_file);
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
    if (m_file == nullptr) {
        return;
    }
    const std::string line =
        csv_field(origin.source) + "," + (origin.line > 0 ? std::to_string(origin.line) : "") +
        "," + (origin.record > 0 ? std::to_string(origin.record) : "") + "," + csv_field(sqlstate) +
        "," + csv_field(message, true) + "," + csv_field(raw_row, true) + "\n";
    std::fwrite(line.data(), 1, line.size(), m_file);
}

void RejectSink::close() {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_file == nullptr) {
        return;
    }
    const bool failed = std::ferror(m_file) != 0;
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
