#include "fields.hpp"

#include <pg_ingest/error.hpp>

#include "hex_digit.hpp"

namespace pg_ingest::cli {

namespace {

// The record ends in a CR that is not escaped: an odd run of backslashes before it escapes it in
// text format (CSV has no escapes outside quotes).
bool ends_in_line_end_cr(std::string_view record, InputFormat format) {
    if (record.empty() || record.back() != '\r') {
        return false;
    }
    std::size_t backslashes = 0;
    if (format == InputFormat::text) {
        while (backslashes + 1 < record.size() && record[record.size() - 2 - backslashes] == '\\') {
            ++backslashes;
        }
    }
    return backslashes % 2 == 0;
}

int octal(char c) {
    return c >= '0' && c <= '7' ? c - '0' : -1;
}

void split_csv(std::string_view line, const FieldSyntax& syntax, std::vector<Field>& fields) {
    std::size_t i = 0;
    while (true) {
        std::string value;
        bool saw_quote = false;
        bool at_delimiter = false;
        while (i < line.size()) {
            const char c = line[i++];
            if (c == syntax.delimiter) {
                at_delimiter = true;
                break;
            }
            if (c != syntax.quote) {
                value += c;
                continue;
            }
            // A quoted part: "" is a quote, the next lone quote ends it.
            saw_quote = true;
            while (true) {
                if (i >= line.size()) {
                    throw Error("unterminated CSV quoted field", "22P04", "", "", true);
                }
                const char q = line[i++];
                if (q == syntax.quote) {
                    if (i < line.size() && line[i] == syntax.quote) {
                        value += q;
                        ++i;
                        continue;
                    }
                    break;
                }
                value += q;
            }
        }
        if (!saw_quote && value == syntax.null_string) {
            fields.emplace_back(std::nullopt);
        } else {
            fields.emplace_back(std::move(value));
        }
        if (!at_delimiter) {
            return;
        }
    }
}

void split_text(std::string_view line, const FieldSyntax& syntax, std::vector<Field>& fields) {
    std::size_t i = 0;
    while (true) {
        const std::size_t start = i;
        std::string value;
        bool at_delimiter = false;
        while (i < line.size()) {
            const char c = line[i++];
            if (c == syntax.delimiter) {
                at_delimiter = true;
                break;
            }
            if (c != '\\') {
                value += c;
                continue;
            }
            if (i >= line.size()) {
                break;  // a lone backslash at the end of the line is dropped, as COPY does
            }
            const char e = line[i++];
            if (octal(e) >= 0) {
                int v = octal(e);
                for (int k = 0; k < 2 && i < line.size() && octal(line[i]) >= 0; ++k) {
                    v = v * 8 + octal(line[i++]);
                }
                value += static_cast<char>(v & 0xff);
            } else if (e == 'x' && i < line.size() && detail::hex_value(line[i]) >= 0) {
                int v = detail::hex_value(line[i++]);
                if (i < line.size() && detail::hex_value(line[i]) >= 0) {
                    v = v * 16 + detail::hex_value(line[i++]);
                }
                value += static_cast<char>(v);
            } else {
                switch (e) {
                    case 'b':
                        value += '\b';
                        break;
                    case 'f':
                        value += '\f';
                        break;
                    case 'n':
                        value += '\n';
                        break;
                    case 'r':
                        value += '\r';
                        break;
                    case 't':
                        value += '\t';
                        break;
                    case 'v':
                        value += '\v';
                        break;
                    default:
                        value += e;
                }
            }
        }
        const std::size_t raw_end = at_delimiter ? i - 1 : i;
        if (line.substr(start, raw_end - start) == syntax.null_string) {
            fields.emplace_back(std::nullopt);
        } else {
            fields.emplace_back(std::move(value));
        }
        if (!at_delimiter) {
            return;
        }
    }
}

}  // namespace

FieldSyntax FieldSyntax::defaults(InputFormat format) {
    FieldSyntax syntax;
    syntax.format = format;
    if (format == InputFormat::text) {
        syntax.delimiter = '\t';
        syntax.null_string = "\\N";
    }
    return syntax;
}

std::string_view without_line_end(std::string_view record, InputFormat format) {
    if (!record.empty() && record.back() == '\n') {
        record.remove_suffix(1);
    }
    if (ends_in_line_end_cr(record, format)) {
        record.remove_suffix(1);
    }
    return record;
}

void split_record(std::string_view record, const FieldSyntax& syntax, std::vector<Field>& fields) {
    fields.clear();
    const std::string_view line = without_line_end(record, syntax.format);
    if (syntax.format == InputFormat::csv) {
        split_csv(line, syntax, fields);
    } else {
        split_text(line, syntax, fields);
    }
}

void refuse_stray_line_ends(const Batch& batch, const std::vector<std::string>& sources,
                            InputFormat format) {
    for (const auto& [index, shape] : batch.multiline) {
        if (shape.stray == 0) {
            continue;
        }
        const bool csv = format == InputFormat::csv;
        const std::string what = shape.stray == '\r' ? "carriage return" : "newline";
        const std::string hint = csv ? "Use quoted CSV field to represent " + what + "."
                                     : std::string("Use \"") +
                                           (shape.stray == '\r' ? "\\r" : "\\n") +
                                           "\" to represent " + what + ".";
        const RecordOrigin origin = batch.origin(sources, index);
        throw Error((csv ? "unquoted " : "literal ") + what + " found in data (" +
                        (origin.source == "-" ? "stdin" : origin.source) + ", line " +
                        std::to_string(origin.line) + ")",
                    "22P04", "", hint, true);
    }
}

bool is_end_marker(std::string_view record) {
    return without_line_end(record, InputFormat::csv) == "\\.";
}

}  // namespace pg_ingest::cli
