#include <pg_ingest/qualified_name.hpp>

#include <vector>

#include <pg_ingest/error.hpp>

#include "name_parts.hpp"

namespace pg_ingest {

namespace {

char fold(char c) {
    // ASCII-only folding, as the server does for unquoted identifiers in multibyte encodings.
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

namespace detail {

std::vector<NamePart> parse_name_parts(std::string_view text) {
    if (text.find('\0') != std::string_view::npos) {
        throw Error("table name contains a NUL byte");
    }
    std::vector<NamePart> parts(1);
    bool in_quotes = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        NamePart& part = parts.back();
        if (in_quotes) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    part.name += '"';
                    ++i;
                } else {
                    in_quotes = false;
                }
            } else {
                part.name += c;
            }
        } else if (c == '"') {
            if (!part.name.empty() || part.quoted) {
                throw Error("invalid table name '" + std::string(text) +
                            "': a quote may only start a name part");
            }
            in_quotes = true;
            part.quoted = true;
        } else if (c == '.') {
            if (part.name.empty()) {
                throw Error("invalid table name '" + std::string(text) + "': empty name part");
            }
            parts.emplace_back();
        } else {
            if (part.quoted) {
                throw Error("invalid table name '" + std::string(text) +
                            "': text after a closing quote");
            }
            part.name += c;
        }
    }
    if (in_quotes) {
        throw Error("invalid table name '" + std::string(text) + "': unterminated quote");
    }
    if (parts.back().name.empty()) {
        throw Error("invalid table name '" + std::string(text) + "': empty name part");
    }
    if (parts.size() > 2) {
        throw Error("invalid table name '" + std::string(text) + "': expected name or schema.name");
    }
    return parts;
}

}  // namespace detail

QualifiedName QualifiedName::parse(std::string_view text, bool case_sensitive) {
    std::vector<detail::NamePart> parts = detail::parse_name_parts(text);
    for (detail::NamePart& part : parts) {
        if (!part.quoted && !case_sensitive) {
            for (char& c : part.name) {
                c = fold(c);
            }
        }
    }
    QualifiedName result;
    if (parts.size() == 2) {
        result.schema = std::move(parts[0].name);
    }
    result.name = std::move(parts.back().name);
    return result;
}

std::string QualifiedName::quoted() const {
    return schema.empty() ? quote_identifier(name)
                          : quote_identifier(schema) + "." + quote_identifier(name);
}

std::string quote_identifier(std::string_view identifier) {
    if (identifier.empty()) {
        throw Error("empty identifier");
    }
    if (identifier.find('\0') != std::string_view::npos) {
        throw Error("identifier contains a NUL byte");
    }
    std::string quoted = "\"";
    for (const char c : identifier) {
        quoted += c;
        if (c == '"') {
            quoted += '"';
        }
    }
    quoted += '"';
    return quoted;
}

}  // namespace pg_ingest
