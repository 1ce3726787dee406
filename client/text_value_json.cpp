// parse_text_value for json and jsonb: validation of RFC 8259 text with json_in's messages (the
// value itself is kept as given); \u escapes are checked as far as each type's input function
// checks them.
#include <algorithm>
#include <string>

#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input {

namespace {

constexpr const char* k_untranslatable = "22P05";

class JsonValidator {
  public:
    struct TooDeep {};
    JsonValidator(const Context& cx, bool jsonb, bool refuse_deep)
        : m_cx(cx), m_s(cx.text), m_jsonb(jsonb), m_refuse_deep(refuse_deep) {}

    void run() {
        skip_space();
        value(0);
        skip_space();
        if (m_pos < m_s.size()) {
            bad("Expected end of input, but found \"" + token_at(m_pos) + "\".");
        }
    }

  private:
    [[noreturn]] void bad(const std::string& detail) const {
        m_cx.fail_value(std::string("invalid input syntax for type ") +
                            (m_jsonb ? "jsonb" : "json") + " (" + detail + ")",
                        k_invalid_text, detail);
    }
    std::string token_at(std::size_t at) const {
        std::size_t end = at;
        while (end < m_s.size() && end - at < 20 &&
               (is_alpha(m_s[end]) || is_digit(m_s[end]) || m_s[end] == '.' || m_s[end] == '-' ||
                m_s[end] == '+' || static_cast<unsigned char>(m_s[end]) >= 0x80)) {
            ++end;
        }
        return std::string(m_s.substr(at, std::max<std::size_t>(end - at, 1)));
    }
    void skip_space() {
        while (m_pos < m_s.size() && (m_s[m_pos] == ' ' || m_s[m_pos] == '\t' ||
                                      m_s[m_pos] == '\n' || m_s[m_pos] == '\r')) {
            ++m_pos;
        }
    }
    char peek() const { return m_pos < m_s.size() ? m_s[m_pos] : '\0'; }

    void value(int depth) {
        if (depth > 6000) {  // the recursion must stop somewhere
            if (!m_refuse_deep) {
                throw TooDeep{};
            }
            m_cx.fail("JSON nesting too deep", "54001");
        }
        if (m_pos >= m_s.size()) {
            bad("The input string ended unexpectedly.");
        }
        const char c = m_s[m_pos];
        if (c == '{' || c == '[') {
            items(c == '{' ? '}' : ']', depth);
            return;
        }
        if (c == '"') {
            string();
            return;
        }
        if (c == '-' || is_digit(c)) {
            number();
            return;
        }
        for (const char* word : {"true", "false", "null"}) {
            const std::string_view w(word);
            if (m_s.substr(m_pos, w.size()) == w &&
                (m_pos + w.size() >= m_s.size() || !is_alpha(m_s[m_pos + w.size()]))) {
                m_pos += w.size();
                return;
            }
        }
        bad("Token \"" + token_at(m_pos) + "\" is invalid.");
    }

    // An object's members ("name": value) or an array's elements, from the opening bracket on.
    void items(char close, int depth) {
        ++m_pos;
        skip_space();
        if (peek() == close) {
            ++m_pos;
            return;
        }
        do {
            skip_space();
            if (close == '}') {
                member_name();
            }
            value(depth + 1);
        } while (another_item(close));
    }

    // "name": up to the value
    void member_name() {
        if (peek() != '"') {
            bad("Expected string, but found \"" + token_at(m_pos) + "\".");
        }
        string();
        skip_space();
        if (peek() != ':') {
            bad("Expected \":\", but found \"" + token_at(m_pos) + "\".");
        }
        ++m_pos;
        skip_space();
    }

    // After an object member or array element: true at ',' (consumed), false at `close`
    // (consumed), an error otherwise.
    bool another_item(char close) {
        skip_space();
        if (peek() == ',') {
            ++m_pos;
            return true;
        }
        if (peek() == close) {
            ++m_pos;
            return false;
        }
        bad(std::string("Expected \",\" or \"") + close + "\", but found \"" + token_at(m_pos) +
            "\".");
    }

    void number() {
        const std::size_t start = m_pos;
        if (peek() == '-') {
            ++m_pos;
        }
        if (peek() == '0') {
            ++m_pos;
        } else if (is_digit(peek())) {
            while (is_digit(peek())) {
                ++m_pos;
            }
        } else {
            bad("Token \"" + token_at(start) + "\" is invalid.");
        }
        if (peek() == '.') {
            ++m_pos;
            if (!is_digit(peek())) {
                bad("Token \"" + token_at(start) + "\" is invalid.");
            }
            while (is_digit(peek())) {
                ++m_pos;
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            ++m_pos;
            if (peek() == '+' || peek() == '-') {
                ++m_pos;
            }
            if (!is_digit(peek())) {
                bad("Token \"" + token_at(start) + "\" is invalid.");
            }
            while (is_digit(peek())) {
                ++m_pos;
            }
        }
        if (is_alpha(peek()) || is_digit(peek())) {
            bad("Token \"" + token_at(start) + "\" is invalid.");
        }
    }

    unsigned hex4() {
        if (m_pos + 4 > m_s.size()) {
            bad("\"\\u\" must be followed by four hexadecimal digits.");
        }
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const int h = hex_value(m_s[m_pos + static_cast<std::size_t>(k)]);
            if (h < 0) {
                bad("\"\\u\" must be followed by four hexadecimal digits.");
            }
            v = v << 4 | static_cast<unsigned>(h);
        }
        m_pos += 4;
        return v;
    }

    void string() {
        ++m_pos;  // opening quote
        while (true) {
            if (m_pos >= m_s.size()) {
                bad("The input string ended unexpectedly.");
            }
            const char c = m_s[m_pos];
            if (c == '"') {
                ++m_pos;
                return;
            }
            if (static_cast<unsigned char>(c) < 0x20) {
                bad("Character with value 0x" + hex_byte(c) + " must be escaped.");
            }
            if (c != '\\') {
                ++m_pos;
                continue;
            }
            ++m_pos;
            const char e = peek();
            ++m_pos;
            switch (e) {
                case '"':
                case '\\':
                case '/':
                case 'b':
                case 'f':
                case 'n':
                case 'r':
                case 't':
                    break;
                case 'u': {
                    const unsigned code = hex4();
                    if (code == 0 && m_jsonb) {
                        m_cx.fail_value(
                            "unsupported Unicode escape sequence (\\u0000 cannot be "
                            "converted to text)",
                            k_untranslatable);
                    }
                    if (!m_jsonb) {
                        // json_in checks only the four hex digits: it keeps the text and never
                        // decodes it, so an unpaired surrogate is accepted (jsonb refuses one).
                        break;
                    }
                    if (code >= 0xDC00 && code <= 0xDFFF) {
                        bad("Unicode low surrogate must follow a high surrogate.");
                    }
                    if (code >= 0xD800 && code <= 0xDBFF) {
                        if (peek() != '\\' || m_pos + 1 >= m_s.size() || m_s[m_pos + 1] != 'u') {
                            bad("Unicode low surrogate must follow a high surrogate.");
                        }
                        m_pos += 2;
                        const unsigned low = hex4();
                        if (low < 0xDC00 || low > 0xDFFF) {
                            bad("Unicode low surrogate must follow a high surrogate.");
                        }
                    }
                    break;
                }
                default:
                    bad("Escape sequence \"\\" + std::string(1, e) + "\" is invalid.");
            }
        }
    }

    static std::string hex_byte(char c) {
        static const char* digits = "0123456789abcdef";
        const auto u = static_cast<unsigned char>(c);
        return std::string{digits[u >> 4], digits[u & 15]};
    }

    const Context& m_cx;
    std::string_view m_s;
    bool m_jsonb;
    bool m_refuse_deep;
    std::size_t m_pos = 0;
};

}  // namespace

void check_json(const Context& cx, bool jsonb, bool refuse_deep) {
    try {
        JsonValidator(cx, jsonb, refuse_deep).run();
    } catch (const JsonValidator::TooDeep&) {
        // Deeper than we check: the server (whose limit is its stack) decides.
    }
}

}  // namespace pg_ingest::detail::text_input
