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

// The line end of a record (which has one). A CR just before the LF that ends a CSV record is
// outside quotes; in text format an escaped one is data ("\\\r\n" ends an LF line for the server).
LineEnd line_end_of(std::string_view record, bool backslashes_escape) {
    if (record.back() == '\r') {
        return LineEnd::cr;
    }
    const bool crlf = record.size() >= 2 && record[record.size() - 2] == '\r' &&
                      !escaped_at(record, record.size() - 2, backslashes_escape);
    return crlf ? LineEnd::crlf : LineEnd::lf;
}

const char* line_end_text(LineEnd eol) {
    return eol == LineEnd::crlf ? "\r\n" : eol == LineEnd::cr ? "\r" : "\n";
}

}  // namespace

std::size_t RecordScanner::end_record(std::size_t end, LineEnd kind) {
    if (!m_line_end) {
        m_line_end = kind;
    }
    m_current.newlines = kind == LineEnd::cr ? m_current.inner_cr : m_current.inner_lf;
    m_last = m_current;
    m_current = RecordShape();
    return end;
}

std::size_t RecordScanner::next_end(std::string_view data, std::size_t from) {
    std::size_t i = from;
    if (m_cr_pending && i < data.size()) {
        // The CR that ended the previous call's data: CRLF, or a bare CR.
        m_cr_pending = false;
        if (data[i] == '\n') {
            return end_record(i + 1, LineEnd::crlf);
        }
        if (!m_line_end) {
            return end_record(i, LineEnd::cr);
        }
        mark_stray('\r');  // a bare CR in a CRLF source
    }
    // The quote and escape state lives in locals while scanning, back in the members on the way
    // out: the compiler cannot keep members in registers next to data read through a char
    // pointer (which may alias them).
    const bool csv = m_format == InputFormat::csv;
    const char special = csv ? m_quote : '\\';
    bool in_quotes = m_in_quotes;
    bool escaped = m_escaped;
    const std::size_t size = data.size();
    for (; i < size; ++i) {
        if (!escaped) {
            // A tight loop over the bytes that cannot change the state: most of them.
            while (i < size && !m_stops[static_cast<unsigned char>(data[i])]) {
                ++i;
            }
            if (i == size) {
                break;
            }
        }
        const char c = data[i];
        if (escaped) {
            // Text: whatever follows a backslash is data, a CR or LF too.
            escaped = false;
            m_current.inner_lf += c == '\n' ? 1 : 0;
            m_current.inner_cr += c == '\r' ? 1 : 0;
            m_current.backslash_dot = m_current.backslash_dot || c == '.';
            continue;
        }
        if (c == special) {
            // CSV: a doubled quote inside a field toggles twice, still inside as it should be.
            in_quotes = csv ? !in_quotes : in_quotes;
            escaped = !csv;
            continue;
        }
        if (in_quotes) {
            ++(c == '\n' ? m_current.inner_lf : m_current.inner_cr);
            continue;
        }
        // A line end byte neither quoted nor escaped.
        m_in_quotes = false;
        m_escaped = false;
        if (c == '\n') {
            if (m_line_end == LineEnd::cr) {
                mark_stray('\n');  // no line end in a CR source: the record goes on
                continue;
            }
            if (m_line_end == LineEnd::crlf) {
                mark_stray('\n');  // an LF without its CR: the server's line ends here
            }
            return end_record(i + 1, LineEnd::lf);
        }
        if (m_line_end == LineEnd::cr) {
            return end_record(i + 1, LineEnd::cr);
        }
        if (m_line_end == LineEnd::lf) {
            mark_stray('\r');
            continue;
        }
        if (i + 1 == size) {
            m_cr_pending = true;  // CRLF or CR: the next call tells
            continue;
        }
        if (data[i + 1] == '\n') {
            return end_record(i + 2, LineEnd::crlf);
        }
        if (!m_line_end) {
            return end_record(i + 1, LineEnd::cr);
        }
        mark_stray('\r');
    }
    m_in_quotes = in_quotes;
    m_escaped = escaped;
    return std::string_view::npos;
}

bool RecordScanner::finish() {
    if (!m_cr_pending) {
        return false;
    }
    m_cr_pending = false;
    if (m_line_end) {
        return false;  // CRLF: the reader gives it its LF
    }
    end_record(0, LineEnd::cr);
    return true;
}

std::string where(const RecordOrigin& origin) {
    std::string text = origin.source == "-" ? "stdin" : origin.source;
    if (origin.line > 0) {
        text += ", line " + std::to_string(origin.line);
    }
    return text;
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
    m_ahead.resize(m_sources.size());
    m_ahead_eof.resize(m_sources.size());
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

bool InputReader::read_more(std::size_t index, std::string& into) {
    const std::size_t old_size = into.size();
    into.resize(old_size + k_read_size);
    std::FILE* file = m_files[index];
    const std::size_t got = std::fread(&into[old_size], 1, k_read_size, file);
    into.resize(old_size + got);
    m_bytes_read += got;
    if (got == 0) {
        if (std::ferror(file) != 0) {
            throw std::runtime_error("error reading '" + m_sources[index] +
                                     "': " + std::strerror(errno));
        }
        return false;
    }
    return true;
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
    std::string& ahead = m_ahead[m_current];
    if (!ahead.empty()) {
        m_buffer += ahead;
        std::string().swap(ahead);
        return true;
    }
    if (m_ahead_eof[m_current] || !read_more(m_current, m_buffer)) {
        m_eof = true;
        return false;
    }
    return true;
}

std::optional<LineEnd> InputReader::look_ahead() {
    for (std::size_t index = m_current + 1; index < m_sources.size(); ++index) {
        RecordScanner scanner(m_format, m_quote);
        std::string& ahead = m_ahead[index];
        std::size_t scanned = 0;
        while (true) {
            if (scanner.next_end(ahead, scanned) != std::string_view::npos) {
                return scanner.line_end();
            }
            scanned = ahead.size();
            if (m_ahead_eof[index] || !read_more(index, ahead)) {
                m_ahead_eof[index] = true;
                if (scanner.finish()) {
                    return scanner.line_end();
                }
                break;
            }
        }
    }
    return std::nullopt;
}

const std::string& InputReader::source_name() const {
    static const std::string stdin_name = "stdin";
    const std::string& source = m_sources[m_current];
    return source == "-" ? stdin_name : source;
}

// COPY's end-of-data line "\." ends a source: the server would ignore whatever follows it, and
// in one COPY stream it would also swallow the next sources and batches. So it is never sent,
// the rest of the source is not read into any batch, and a warning says how much was left.
void InputReader::end_source_at_marker(std::uint64_t marker_line) {
    // Lines in the source's style: a CR source's end in CR.
    const char eol = m_scanner->line_end() == LineEnd::cr ? '\r' : '\n';
    std::uint64_t lines = 0;
    bool data = false;
    char last = eol;
    const auto count = [&] {
        for (std::size_t i = m_pos; i < m_buffer.size(); ++i) {
            const char c = m_buffer[i];
            lines += c == eol ? 1 : 0;
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
    lines += last != eol ? 1 : 0;
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
            // A CR held back for the byte after it may end the last record.
            return m_scanner->finish() ? m_buffer.size() : std::string_view::npos;
        }
    }
}

void InputReader::take(Batch& batch, std::size_t end, const RecordShape& shape) {
    // PostgreSQL's text format has no data "\." (a backslash is written "\\"): the server
    // takes it for the end-of-data marker, ends the data there and drops the rest of the
    // stream (or fails when no line end follows), so a record holding one is never sent.
    if (shape.backslash_dot && m_format == InputFormat::text && m_refuse_backslash_dot) {
        throw std::runtime_error(source_name() + ", line " + std::to_string(m_next_line) +
                                 ": \\. inside a record: in text format it is the end-of-data "
                                 "marker, not data (write a backslash in data as \\\\)");
    }
    if (shape.inner_lf > 0 || shape.inner_cr > 0 || shape.stray != 0) {
        batch.multiline.emplace_back(batch.records, shape);
    }
    batch.data.append(m_buffer, m_pos, end - m_pos);
    if (batch.records == 0) {
        batch.first_eol = line_end_of(batch.data, backslashes_escape());
        if (!m_input_eol) {
            m_input_eol = batch.first_eol;
        }
    }
    ++batch.records;
    ++m_next_record;
    m_next_line += 1 + shape.newlines;
    m_pos = end;
}

// A source's last record has no line end: it gets one, since more records (another source,
// another batch) may follow it in the same COPY stream. The server takes the stream's line ends
// from its first line and refuses a record ended otherwise (LF after CRLF, CR after LF, ...), so
// the line end added is the stream's:
//  - the one of the batch's first record (a batch never spans two COPY streams);
//  - for a record that starts a batch, the one of the first record read: one COPY over the
//    whole input starts there (a batch that is a COPY of its own takes either; sources with
//    different line ends fail in one stream anyway);
//  - for the first record read, the one of its source's header line, else that of the next
//    source that has a line end (they follow it in the stream), else LF.
// A record ending in a bare CR (in a CRLF or LF source) lacks only the LF of its CRLF.
void InputReader::complete_last_record(const Batch& batch) {
    const std::string_view record = std::string_view(m_buffer).substr(m_pos);
    const RecordShape& pending = m_scanner->pending();
    // A backslash ending the data escapes nothing: the server drops it, and a line end added
    // after it would be an escaped newline, data that joins this record to the next one. Not
    // checked where the byte may end a multibyte character.
    if (m_format == InputFormat::text && m_refuse_backslash_dot && m_scanner->in_escape()) {
        const std::uint64_t inner =
            m_scanner->line_end() == LineEnd::cr ? pending.inner_cr : pending.inner_lf;
        throw std::runtime_error(
            source_name() + ", line " + std::to_string(m_next_line + inner) +
            ": a lone backslash ends the data: in text format it escapes the next character and "
            "none follows (write a backslash in data as \\\\)");
    }
    // A quote left open: a line end added inside it, and the next source's lines, would be
    // data of this field for the server. Not checked where the quote byte may be part of a
    // multibyte character.
    if (m_format == InputFormat::csv && m_scanner->in_quotes() &&
        (m_refuse_backslash_dot || static_cast<unsigned char>(m_quote) < 0x40)) {
        throw std::runtime_error(source_name() + ", line " + std::to_string(m_next_line) +
                                 ": unterminated CSV quoted field: the data ends inside a quoted "
                                 "field of the record that starts here (a quote in a quoted "
                                 "field is written twice)");
    }
    if (record.back() == '\r' && !escaped_at(record, record.size() - 1, backslashes_escape())) {
        m_completed_eol = LineEnd::crlf;
        m_buffer += '\n';
    } else {
        if (batch.records > 0) {
            m_completed_eol = batch.first_eol;
        } else if (m_input_eol) {
            m_completed_eol = *m_input_eol;
        } else if (m_header_eol) {
            m_completed_eol = *m_header_eol;
        } else {
            // A stream of its own: a one-record stream takes any line end.
            m_completed_eol =
                m_stream_per_source ? LineEnd::lf : look_ahead().value_or(LineEnd::lf);
        }
        m_buffer += line_end_text(m_completed_eol);
    }
    m_completed = true;
}

bool InputReader::next(Batch& batch, std::uint64_t max_records, std::size_t max_bytes) {
    batch.data.clear();
    batch.multiline.clear();
    batch.records = 0;
    batch.first_eol = LineEnd::lf;
    max_records = std::max<std::uint64_t>(max_records, 1);
    while (m_current < m_sources.size()) {
        if (!m_started) {
            m_started = true;
            m_eof = false;
            m_completed = false;
            m_header_eol.reset();
            if (m_stream_per_source) {
                m_input_eol.reset();  // the stream starts with this source
            }
            m_buffer.clear();
            m_pos = 0;
            m_scan = 0;
            m_scanner = std::make_unique<RecordScanner>(m_format, m_quote);
            m_next_record = 1;
            m_next_line = 1;
            if (m_header) {
                const std::size_t end = find_end();
                m_next_line += 1 + m_scanner->inner_newlines();
                if (end != std::string_view::npos) {
                    m_header_eol = line_end_of(std::string_view(m_buffer).substr(0, end),
                                               backslashes_escape());
                }
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
                    RecordShape shape = m_scanner->pending();
                    if (!m_completed) {
                        complete_last_record(batch);
                    }
                    shape.newlines =
                        m_completed_eol == LineEnd::cr ? shape.inner_cr : shape.inner_lf;
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
                // Scanned again next time: the scanner is at a record boundary, and keeps the
                // source's line end.
                m_scan = m_pos;
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
