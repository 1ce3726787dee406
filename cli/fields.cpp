#include "fields.hpp"

#include <pg_ingest/error.hpp>

#include "hex_digit.hpp"

namespace pg_ingest::cli {

namespace {

std::string_view without_line_end(std::string_view record) {
    if (!record.empty() && record.back() == '\n') {
        record.remove_suffix(1);
        if (!record.empty() && record.back() == '\r') {
            record.remove_suffix(1);
        }
    } else if (!record.empty() && record.back() == '\r') {
        record.remove_suffix(1);
    }
    return record;
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

void split_record(std::string_view record, const FieldSyntax& syntax, std::vector<Field>& fields) {
    fields.clear();
    const std::string_view line = without_line_end(record);
    if (syntax.format == InputFormat::csv) {
        split_csv(line, syntax, fields);
    } else {
        split_text(line, syntax, fields);
    }
}

bool is_end_marker(std::string_view record) {
    return without_line_end(record) == "\\.";
}

}  // namespace pg_ingest::cli
