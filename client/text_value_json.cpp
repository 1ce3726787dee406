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
        const std::size_t int_start = m_pos;
        if (peek() == '0') {
            ++m_pos;
        } else if (is_digit(peek())) {
            while (is_digit(peek())) {
                ++m_pos;
            }
        } else {
            bad("Token \"" + token_at(start) + "\" is invalid.");
        }
        const std::string_view int_digits = m_s.substr(int_start, m_pos - int_start);
        std::string_view frac_digits;
        if (peek() == '.') {
            ++m_pos;
            if (!is_digit(peek())) {
                bad("Token \"" + token_at(start) + "\" is invalid.");
            }
            const std::size_t frac_start = m_pos;
            while (is_digit(peek())) {
                ++m_pos;
            }
            frac_digits = m_s.substr(frac_start, m_pos - frac_start);
        }
        long long exponent = 0;
        bool huge_exponent = false;
        if (peek() == 'e' || peek() == 'E') {
            ++m_pos;
            bool negative = false;
            if (peek() == '+' || peek() == '-') {
                negative = peek() == '-';
                ++m_pos;
            }
            if (!is_digit(peek())) {
                bad("Token \"" + token_at(start) + "\" is invalid.");
            }
            while (is_digit(peek())) {
                if (exponent < 1000000000LL) {
                    exponent = exponent * 10 + (peek() - '0');
                } else {
                    huge_exponent = true;
                }
                ++m_pos;
            }
            exponent = negative ? -exponent : exponent;
        }
        if (is_alpha(peek()) || is_digit(peek())) {
            bad("Token \"" + token_at(start) + "\" is invalid.");
        }
        if (m_jsonb) {
            check_numeric_range(int_digits, frac_digits, exponent, huge_exponent);
        }
    }

    // jsonb stores numbers as numeric, whose input refuses what its format cannot hold (22003,
    // "value overflows numeric format"): more than 16383 digits after the point, or a first
    // significant digit at 10^131072 or beyond (numeric_in's exponent bound too).
    void check_numeric_range(std::string_view int_digits, std::string_view frac_digits,
                             long long exponent, bool huge_exponent) const {
        constexpr long long k_max_dscale = 16383;
        constexpr long long k_max_position = 131071;  // weight 32767 in base-10000 digits
        constexpr long long k_max_exponent = 2147483647LL / 2;
        bool overflow = huge_exponent || exponent >= k_max_exponent || exponent <= -k_max_exponent;
        if (!overflow) {
            const long long dscale =
                std::max(0LL, static_cast<long long>(frac_digits.size()) - exponent);
            overflow = dscale > k_max_dscale;
            const std::size_t int_sig = int_digits.find_first_not_of('0');
            long long first = 0;  // decimal position of the first significant digit
            bool nonzero = true;
            if (int_sig != std::string_view::npos) {
                first = static_cast<long long>(int_digits.size() - int_sig) - 1 + exponent;
            } else if (const std::size_t frac_sig = frac_digits.find_first_not_of('0');
                       frac_sig != std::string_view::npos) {
                first = exponent - static_cast<long long>(frac_sig) - 1;
            } else {
                nonzero = false;
            }
            overflow = overflow || (nonzero && first > k_max_position);
        }
        if (overflow) {
            m_cx.fail("value overflows numeric format", "22003");
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
