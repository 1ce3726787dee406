#include "records.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "fields.hpp"

namespace pg_ingest::cli {

namespace {

constexpr std::size_t k_read_size = 1 << 20;

// data[at] is escaped: preceded by an odd run of backslashes, where backslashes escape (text
// format in an encoding whose characters never end in a backslash byte; CSV has no escapes).
bool escaped_at(std::string_view data, std::size_t at, bool backslashes_escape) {
    if (!backslashes_escape) {
        return false;
    }
    std::size_t backslashes = 0;
    while (backslashes < at && data[at - 1 - backslashes] == '\\') {
        ++backslashes;
    }
    return backslashes % 2 == 1;
}

// The record ends in a CRLF line end. A CR just before the LF that ends a CSV record is outside
// quotes; in text format an escaped one is data ("\\\r\n" ends an LF line for the server).
bool ends_in_crlf(std::string_view record, bool backslashes_escape) {
    return record.size() >= 2 && record.back() == '\n' && record[record.size() - 2] == '\r' &&
           !escaped_at(record, record.size() - 2, backslashes_escape);
}

}  // namespace

std::size_t RecordScanner::next_end(std::string_view data, std::size_t from) {
    for (std::size_t i = from; i < data.size(); ++i) {
        const char c = data[i];
        if (m_format == InputFormat::csv) {
            if (c == m_quote) {
                // A doubled quote inside a field toggles twice: still inside, as it should be.
                m_in_quotes = !m_in_quotes;
                continue;
            }
            if (c == '\r' && m_in_quotes) {
                ++m_current.quoted_cr;
            }
        } else if (m_escaped) {
            m_escaped = false;
            if (c == '\n') {
                ++m_current.newlines;
            } else if (c == '.') {
                m_current.backslash_dot = true;
            }
            continue;
        } else if (c == '\\') {
            m_escaped = true;
            continue;
        }
        if (c == '\n') {
            if (m_in_quotes) {
                ++m_current.newlines;
                continue;
            }
            m_last = m_current;
            m_current = RecordShape();
            return i + 1;
        }
    }
    return std::string_view::npos;
}

RecordOrigin Batch::origin(const std::vector<std::string>& sources, std::uint64_t index) const {
    std::uint64_t extra = 0;
    for (const auto& [at, lines] : multiline) {
        if (at >= index) {
            break;
        }
        extra += lines.newlines;
    }
    return {source_index < sources.size() ? sources[source_index] : "?", first_record + index,
            first_line + index + extra};
}

InputReader::InputReader(std::vector<std::string> sources, InputFormat format, char quote,
                         bool header, bool refuse_backslash_dot)
    : m_sources(std::move(sources)),
      m_format(format),
      m_quote(quote),
      m_header(header),
      m_refuse_backslash_dot(refuse_backslash_dot) {
    if (m_sources.empty()) {
        m_sources.push_back("-");
    }
    if (std::count(m_sources.begin(), m_sources.end(), "-") > 1) {
        throw std::runtime_error("standard input ('-') can be read only once");
    }
    std::uint64_t total = 0;
    bool sized = true;
    for (const auto& source : m_sources) {
        std::FILE* file = source == "-" ? stdin : std::fopen(source.c_str(), "rb");
        if (file == nullptr) {
            const int error = errno;
            for (std::FILE* opened : m_files) {
                if (opened != stdin) {
                    std::fclose(opened);
                }
            }
            throw std::runtime_error("cannot open '" + source + "': " + std::strerror(error));
        }
        m_files.push_back(file);
        struct stat info {};
        const bool known = ::fstat(fileno(file), &info) == 0;
        m_identities.emplace_back(known ? static_cast<std::uint64_t>(info.st_dev) : 0,
                                  known ? static_cast<std::uint64_t>(info.st_ino) : 0);
        if (known && S_ISREG(info.st_mode)) {
            total += static_cast<std::uint64_t>(info.st_size);
        } else {
            sized = false;
        }
    }
    if (sized) {
        m_total_bytes = total;
    }
}

InputReader::~InputReader() {
    for (std::FILE* file : m_files) {
        if (file != stdin) {
            std::fclose(file);
        }
    }
}

std::optional<std::string> InputReader::source_of(std::uint64_t dev, std::uint64_t ino) const {
    for (std::size_t i = 0; i < m_identities.size(); ++i) {
        if (m_identities[i] == std::make_pair(dev, ino)) {
            return m_sources[i] == "-" ? "stdin" : m_sources[i];
        }
    }
    return std::nullopt;
}

bool InputReader::fill() {
    if (m_eof) {
        return false;
    }
    // Drop what has been consumed before growing the buffer.
    if (m_pos > 0) {
        m_buffer.erase(0, m_pos);
        m_scan -= m_pos;
        m_pos = 0;
    }
    const std::size_t old_size = m_buffer.size();
    m_buffer.resize(old_size + k_read_size);
    std::FILE* file = m_files[m_current];
    const std::size_t got = std::fread(&m_buffer[old_size], 1, k_read_size, file);
    m_buffer.resize(old_size + got);
    m_bytes_read += got;
    if (got == 0) {
        if (std::ferror(file) != 0) {
            throw std::runtime_error("error reading '" + m_sources[m_current] +
                                     "': " + std::strerror(errno));
        }
        m_eof = true;
        return false;
    }
    return true;
}

// COPY's end-of-data line "\." ends a source: the server would ignore whatever follows it, and
// in one COPY stream it would also swallow the next sources and batches. So it is never sent,
// the rest of the source is not read into any batch, and a warning says how much was left.
void InputReader::end_source_at_marker(std::uint64_t marker_line) {
    std::uint64_t lines = 0;
    bool data = false;
    char last = '\n';
    const auto count = [&] {
        for (std::size_t i = m_pos; i < m_buffer.size(); ++i) {
            const char c = m_buffer[i];
            lines += c == '\n' ? 1 : 0;
            data = data || std::isspace(static_cast<unsigned char>(c)) == 0;
            last = c;
        }
        m_pos = m_buffer.size();
        m_scan = m_pos;
    };
    count();
    while (fill()) {
        count();
    }
    lines += last != '\n' ? 1 : 0;
    if (data) {
        m_warnings.push_back(m_sources[m_current] + ", line " + std::to_string(marker_line) +
                             ": end-of-data marker \\. ends the input there; the " +
                             std::to_string(lines) + " line(s) after it were not loaded");
    }
    m_started = false;
    ++m_current;
}

std::size_t InputReader::find_end() {
    while (true) {
        const std::size_t end = m_scanner->next_end(m_buffer, m_scan);
        if (end != std::string_view::npos) {
            m_scan = end;
            return end;
        }
        m_scan = m_buffer.size();
        if (!fill()) {
            return std::string_view::npos;
        }
    }
}

void InputReader::take(Batch& batch, std::size_t end, const RecordShape& shape) {
    // PostgreSQL's text format has no data "\." (a backslash is written "\\"): the server
    // takes it for the end-of-data marker, ends the data there and drops the rest of the
    // stream (or fails when no line end follows), so a record holding one is never sent.
    if (shape.backslash_dot && m_format == InputFormat::text && m_refuse_backslash_dot) {
        const std::string& source = m_sources[m_current];
        throw std::runtime_error((source == "-" ? "stdin" : source) + ", line " +
                                 std::to_string(m_next_line) +
                                 ": \\. inside a record: in text format it is the end-of-data "
                                 "marker, not data (write a backslash in data as \\\\)");
    }
    if (shape.newlines > 0 || shape.quoted_cr > 0) {
        batch.multiline.emplace_back(batch.records, shape);
    }
    batch.data.append(m_buffer, m_pos, end - m_pos);
    if (batch.records == 0) {
        batch.first_crlf = ends_in_crlf(batch.data, backslashes_escape());
        if (!m_input_crlf) {
            m_input_crlf = batch.first_crlf;
        }
    }
    ++batch.records;
    ++m_next_record;
    m_next_line += 1 + shape.newlines;
    m_pos = end;
}

// A source's last record has no line end: it gets one, since more records (another source,
// another batch) may follow it in the same COPY stream. The server takes the stream's line ends
// from its first line and refuses a record ended otherwise (LF after CRLF or the reverse), so
// the line end added is the stream's:
//  - the one of the batch's first record (a batch never spans two COPY streams);
//  - for a record that starts a batch, the one of the first record read: one COPY over the
//    whole input starts there (a batch that is a COPY of its own takes either; sources with
//    different line ends fail in one stream anyway);
//  - for the first record read, the one of its source's header line, else LF.
// A record ending in a bare CR lacks only the LF of its CRLF.
void InputReader::complete_last_record(const Batch& batch) {
    const std::string_view record = std::string_view(m_buffer).substr(m_pos);
    // A backslash ending the data escapes nothing: the server drops it, and a line end added
    // after it would be an escaped newline, data that joins this record to the next one. Not
    // checked where the byte may end a multibyte character.
    if (m_format == InputFormat::text && m_refuse_backslash_dot && m_scanner->in_escape()) {
        const std::string& source = m_sources[m_current];
        throw std::runtime_error(
            (source == "-" ? "stdin" : source) + ", line " +
            std::to_string(m_next_line + m_scanner->pending().newlines) +
            ": a lone backslash ends the data: in text format it escapes the next character and "
            "none follows (write a backslash in data as \\\\)");
    }
    if (record.back() == '\r' && !escaped_at(record, record.size() - 1, backslashes_escape())) {
        m_buffer += '\n';
    } else {
        const bool crlf =
            batch.records > 0 ? batch.first_crlf : m_input_crlf.value_or(m_header_crlf);
        m_buffer += crlf ? "\r\n" : "\n";
    }
    m_completed = true;
}

bool InputReader::next(Batch& batch, std::uint64_t max_records, std::size_t max_bytes) {
    batch.data.clear();
    batch.multiline.clear();
    batch.records = 0;
    batch.first_crlf = false;
    max_records = std::max<std::uint64_t>(max_records, 1);
    while (m_current < m_sources.size()) {
        if (!m_started) {
            m_started = true;
            m_eof = false;
            m_completed = false;
            m_header_crlf = false;
            m_buffer.clear();
            m_pos = 0;
            m_scan = 0;
            m_scanner = std::make_unique<RecordScanner>(m_format, m_quote);
            m_next_record = 1;
            m_next_line = 1;
            if (m_header) {
                const std::size_t end = find_end();
                m_next_line += 1 + m_scanner->inner_newlines();
                m_header_crlf =
                    end != std::string_view::npos &&
                    ends_in_crlf(std::string_view(m_buffer).substr(0, end), backslashes_escape());
                m_pos = end == std::string_view::npos ? m_buffer.size() : end;
                m_scan = m_pos;
            }
        }
        batch.source_index = m_current;
        batch.first_record = m_next_record;
        batch.first_line = m_next_line;
        while (batch.records < max_records) {
            const std::size_t end = find_end();
            if (end == std::string_view::npos) {
                if (m_pos < m_buffer.size() &&
                    is_end_marker(std::string_view(m_buffer).substr(m_pos))) {
                    m_pos = m_buffer.size();  // a final "\." without a newline: nothing follows
                    m_scan = m_pos;
                } else if (m_pos < m_buffer.size()) {
                    // The last record has no line end. Once completed it may still move to the
                    // next batch (below), and is not completed again there.
                    const RecordShape shape = m_scanner->pending();
                    if (!m_completed) {
                        complete_last_record(batch);
                    }
                    m_scan = m_buffer.size();
                    if (batch.records > 0 &&
                        batch.data.size() + (m_buffer.size() - m_pos) > max_bytes) {
                        return true;  // this record starts the next batch
                    }
                    take(batch, m_buffer.size(), shape);
                }
                // End of this source: batches never span two sources.
                m_started = false;
                ++m_current;
                if (batch.records > 0) {
                    return true;
                }
                break;
            }
            const std::size_t length = end - m_pos;
            if (is_end_marker(std::string_view(m_buffer).substr(m_pos, length))) {
                const std::uint64_t marker_line = m_next_line;
                m_pos = end;
                end_source_at_marker(marker_line);
                if (batch.records > 0) {
                    return true;
                }
                break;
            }
            if (batch.records > 0 && batch.data.size() + length > max_bytes) {
                m_scan = m_pos;  // rescan this record next time
                m_scanner = std::make_unique<RecordScanner>(m_format, m_quote);
                return true;
            }
            take(batch, end, m_scanner->shape());
        }
        if (batch.records >= max_records) {
            return true;
        }
    }
    return batch.records > 0;
}

}  // namespace pg_ingest::cli
