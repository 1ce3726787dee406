// parse_text_value for one-dimensional arrays: array_in's literal syntax ({a,"b c",NULL}, an
// optional [1:n]= or [n]= decoration that must match), each element parsed with the element
// type's syntax.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input {

namespace {

constexpr const char* k_array_subscript = "2202E";

// One element as the literal gives it, before the element type reads it.
struct Item {
    std::string text;
    bool null = false;  // an unquoted, unescaped NULL
};

// A bound in a dimension decoration, read as array_in reads it: the run of digits and signs is
// given to atoi (so "+1" is 1, "1+" 1 and "1-" 1). (int) of a long, as atoi returns it.
std::int32_t bound_of(std::string_view run) {
    const long value = std::strtol(std::string(run).c_str(), nullptr, 10);
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<unsigned long>(value)));
}

}  // namespace

Value parse_array(const Context& cx, const ColumnType& type, const TextValueOptions& options) {
    const std::string_view s = cx.text;
    auto malformed = [&](const std::string& detail) {
        cx.fail_value("malformed array literal", k_invalid_text, detail);
    };
    std::size_t i = 0;
    auto skip_blanks = [&] {
        while (i < s.size() && is_blank(s[i])) {
            ++i;
        }
    };
    auto bound_run = [&] {
        const std::size_t start = i;
        while (i < s.size() && (is_digit(s[i]) || s[i] == '+' || s[i] == '-')) {
            ++i;
        }
        return s.substr(start, i - start);
    };
    skip_blanks();
    // Dimension decoration [lower:upper]= or [upper]= (lower bound 1), as array_in reads it.
    std::optional<std::int64_t> declared_length;
    std::int32_t lower = 1;
    if (i < s.size() && s[i] == '[') {
        ++i;
        std::string_view run = bound_run();
        if (run.empty()) {
            malformed("\"[\" must introduce explicitly-specified array dimensions.");
        }
        if (i < s.size() && s[i] == ':') {
            lower = bound_of(run);
            ++i;
            run = bound_run();
            if (run.empty()) {
                malformed("Missing array dimension value.");
            }
        }
        if (i >= s.size() || s[i] != ']') {
            malformed("Missing \"]\" after array dimensions.");
        }
        ++i;
        const std::int32_t upper = bound_of(run);
        if (upper < lower) {
            cx.fail_value("upper bound cannot be less than lower bound", k_array_subscript);
        }
        declared_length = static_cast<std::int64_t>(upper) - lower + 1;
        skip_blanks();
        if (i < s.size() && s[i] == '[') {
            cx.fail_value("multidimensional arrays are not supported by the client",
                          k_not_supported);
        }
        if (i >= s.size() || s[i] != '=') {
            malformed("Missing \"=\" after array dimensions.");
        }
        ++i;
        skip_blanks();
        if (i >= s.size() || s[i] != '{') {
            malformed("Array contents must start with \"{\".");
        }
    }
    if (i >= s.size() || s[i] != '{') {
        malformed("Array value must start with \"{\" or dimension information.");
    }
    ++i;
    // The literal's structure first, the elements' values after: as array_in, which checks the
    // decoration against the contents before any element is read.
    std::vector<Item> items;
    skip_blanks();
    if (i < s.size() && s[i] == '}') {
        ++i;
    } else {
        while (true) {
            skip_blanks();
            if (i >= s.size()) {
                malformed("Unexpected end of input.");
            }
            if (s[i] == '{') {
                if (declared_length) {
                    malformed("Specified array dimensions do not match array contents.");
                }
                cx.fail_value("multidimensional arrays are not supported by the client",
                              k_not_supported);
            }
            Item item;
            bool quoted = false;
            bool escaped = false;
            if (s[i] == '"') {
                quoted = true;
                ++i;
                while (true) {
                    if (i >= s.size()) {
                        malformed("Unexpected end of input.");
                    }
                    if (s[i] == '\\') {
                        if (i + 1 >= s.size()) {
                            malformed("Unexpected end of input.");
                        }
                        item.text += s[i + 1];
                        i += 2;
                        continue;
                    }
                    if (s[i] == '"') {
                        ++i;
                        break;
                    }
                    item.text += s[i++];
                }
            } else {
                // Unquoted: up to ',' or '}'; trailing blanks that were not escaped are dropped.
                std::size_t keep = 0;
                while (i < s.size() && s[i] != ',' && s[i] != '}') {
                    if (s[i] == '"' || s[i] == '{') {
                        malformed(std::string("Unexpected \"") + s[i] + "\" character.");
                    }
                    if (s[i] == '\\') {
                        if (i + 1 >= s.size()) {
                            malformed("Unexpected end of input.");
                        }
                        item.text += s[i + 1];
                        i += 2;
                        escaped = true;
                        keep = item.text.size();
                        continue;
                    }
                    item.text += s[i];
                    if (!is_blank(s[i])) {
                        keep = item.text.size();
                    }
                    ++i;
                }
                item.text.resize(keep);
                if (item.text.empty() && !escaped) {
                    malformed(std::string("Unexpected \"") + (i < s.size() ? s[i] : ' ') +
                              "\" character.");
                }
            }
            item.null = !quoted && !escaped && lowered(item.text) == "null";
            items.push_back(std::move(item));
            skip_blanks();
            if (i >= s.size()) {
                malformed("Unexpected end of input.");
            }
            if (s[i] == ',') {
                ++i;
                continue;
            }
            if (s[i] == '}') {
                ++i;
                break;
            }
            malformed(std::string("Unexpected \"") + s[i] + "\" character.");
        }
    }
    skip_blanks();
    if (i < s.size()) {
        malformed("Junk after closing right brace.");
    }
    if (declared_length && *declared_length != static_cast<std::int64_t>(items.size())) {
        malformed("Specified array dimensions do not match array contents.");
    }
    if (lower != 1) {
        cx.fail_value("array lower bounds other than 1 are not supported by the client",
                      k_not_supported);
    }
    ColumnType element;
    element.kind = type.element_kind;
    element.oid = type.element_oid;
    element.typmod = type.typmod;
    element.name = type.name;
    if (element.name.size() > 2 && element.name.compare(element.name.size() - 2, 2, "[]") == 0) {
        element.name.resize(element.name.size() - 2);
    }
    Array array;
    array.elements.reserve(items.size());
    for (const Item& item : items) {
        if (item.null) {
            array.elements.emplace_back();
            continue;
        }
        const std::string element_what = std::string(cx.what) + (cx.what.empty() ? "" : ", ") +
                                         "element " + std::to_string(array.elements.size() + 1);
        array.elements.push_back(parse_text_value(item.text, element, element_what, options));
    }
    return Value(std::move(array));
}

}  // namespace pg_ingest::detail::text_input
