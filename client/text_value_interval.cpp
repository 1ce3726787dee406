// parse_text_value for interval: the server's output styles postgres, postgres_verbose,
// iso_8601 and sql_standard, with fractional units distributed as interval_in does.
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input {

namespace {

constexpr const char* k_interval_field_overflow = "22015";

struct IntervalSum {
    std::int64_t months = 0;
    std::int64_t days = 0;
    std::int64_t micros = 0;
};

enum class Unit {
    microsecond,
    millisecond,
    second,
    minute,
    hour,
    day,
    week,
    month,
    year,
    decade,
    century,
    millennium
};

std::optional<Unit> unit_of(const std::string& word) {
    static const std::pair<const char*, Unit> k_units[] = {
        {"microsecond", Unit::microsecond},
        {"microseconds", Unit::microsecond},
        {"microsecon", Unit::microsecond},
        {"us", Unit::microsecond},
        {"usec", Unit::microsecond},
        {"usecs", Unit::microsecond},
        {"useconds", Unit::microsecond},
        {"millisecond", Unit::millisecond},
        {"milliseconds", Unit::millisecond},
        {"millisecon", Unit::millisecond},
        {"ms", Unit::millisecond},
        {"msec", Unit::millisecond},
        {"msecs", Unit::millisecond},
        {"mseconds", Unit::millisecond},
        {"second", Unit::second},
        {"seconds", Unit::second},
        {"sec", Unit::second},
        {"secs", Unit::second},
        {"s", Unit::second},
        {"minute", Unit::minute},
        {"minutes", Unit::minute},
        {"min", Unit::minute},
        {"mins", Unit::minute},
        {"m", Unit::minute},
        {"hour", Unit::hour},
        {"hours", Unit::hour},
        {"hr", Unit::hour},
        {"hrs", Unit::hour},
        {"h", Unit::hour},
        {"day", Unit::day},
        {"days", Unit::day},
        {"d", Unit::day},
        {"week", Unit::week},
        {"weeks", Unit::week},
        {"w", Unit::week},
        {"month", Unit::month},
        {"months", Unit::month},
        {"mon", Unit::month},
        {"mons", Unit::month},
        {"year", Unit::year},
        {"years", Unit::year},
        {"yr", Unit::year},
        {"yrs", Unit::year},
        {"y", Unit::year},
        {"decade", Unit::decade},
        {"decades", Unit::decade},
        {"dec", Unit::decade},
        {"decs", Unit::decade},
        {"century", Unit::century},
        {"centuries", Unit::century},
        {"cent", Unit::century},
        {"c", Unit::century},
        {"millennium", Unit::millennium},
        {"millennia", Unit::millennium},
        {"mil", Unit::millennium},
        {"mils", Unit::millennium},
    };
    for (const auto& [name, unit] : k_units) {
        if (word == name) {
            return unit;
        }
    }
    return std::nullopt;
}

// An optional '+' or '-', consumed; true for '-'.
bool scan_sign(Scanner& sc) {
    const char c = sc.peek();
    if (c != '+' && c != '-') {
        return false;
    }
    ++sc.pos;
    return c == '-';
}

// A signed decimal number split as the server splits it: integer part and signed fraction.
struct Number {
    std::int64_t whole = 0;
    double fraction = 0;
};

bool scan_number(Scanner& sc, Number& out, bool& overflow) {
    const std::size_t start = sc.pos;
    const bool negative = scan_sign(sc);
    std::int64_t whole = 0;
    std::size_t digits = 0;
    while (is_digit(sc.peek())) {
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, sc.peek() - '0', &whole)) {
            overflow = true;
        }
        ++sc.pos;
        ++digits;
    }
    const std::size_t dot = sc.pos;
    const double fraction = sc.fraction();
    if (sc.pos > dot) {
        digits += sc.pos - dot - 1;  // the digits after the '.'
    }
    if (digits == 0) {
        sc.pos = start;
        return false;
    }
    out.whole = negative ? -whole : whole;
    out.fraction = negative ? -fraction : fraction;
    return true;
}

class IntervalBuilder {
  public:
    explicit IntervalBuilder(const Context& cx) : m_cx(cx) {}

    void add_months(std::int64_t months) { add(m_sum.months, months); }
    void add_days(std::int64_t days) { add(m_sum.days, days); }
    void add_micros(std::int64_t micros) { add(m_sum.micros, micros); }

    // fraction * scale microseconds, rounded
    void add_fraction_micros(double fraction, double scale) {
        const double micros = std::rint(fraction * scale);
        if (!(std::fabs(micros) < 9.2e18)) {
            overflow();
        }
        add_micros(static_cast<std::int64_t>(micros));
    }
    // fraction * scale days: whole days, the rest as microseconds
    void add_fraction_days(double fraction, double scale) {
        const double days = fraction * scale;
        const double whole = std::trunc(days);
        if (!(std::fabs(whole) < 2.0e9)) {
            overflow();
        }
        add_days(static_cast<std::int64_t>(whole));
        add_fraction_micros(days - whole, static_cast<double>(k_usecs_per_day));
    }

    void apply(const Number& n, Unit unit) {
        switch (unit) {
            case Unit::microsecond:
                add_time(n, 1);
                return;
            case Unit::millisecond:
                add_time(n, 1000);
                return;
            case Unit::second:
                add_time(n, k_usecs_per_second);
                return;
            case Unit::minute:
                add_time(n, 60 * k_usecs_per_second);
                return;
            case Unit::hour:
                add_time(n, 3600 * k_usecs_per_second);
                return;
            case Unit::day:
                add_days(n.whole);
                add_fraction_micros(n.fraction, static_cast<double>(k_usecs_per_day));
                return;
            case Unit::week:
                add_days(times(n.whole, 7));
                add_fraction_days(n.fraction, 7);
                return;
            case Unit::month:
                add_months(n.whole);
                add_fraction_days(n.fraction, 30);
                return;
            case Unit::year:
                add_years(n, 12);
                return;
            case Unit::decade:
                add_years(n, 120);
                return;
            case Unit::century:
                add_years(n, 1200);
                return;
            case Unit::millennium:
                add_years(n, 12000);
                return;
        }
    }

    void negate() {
        m_sum.months = -m_sum.months;
        m_sum.days = -m_sum.days;
        if (m_sum.micros == INT64_MIN) {
            overflow();
        }
        m_sum.micros = -m_sum.micros;
    }

    Interval result() const {
        if (m_sum.months < INT32_MIN || m_sum.months > INT32_MAX || m_sum.days < INT32_MIN ||
            m_sum.days > INT32_MAX) {
            overflow();
        }
        return Interval{m_sum.micros, static_cast<std::int32_t>(m_sum.days),
                        static_cast<std::int32_t>(m_sum.months)};
    }

    [[noreturn]] void overflow() const {
        m_cx.fail_value("interval out of range", k_datetime_overflow);
    }

  private:
    void add_time(const Number& n, std::int64_t micros_per) {
        add_micros(times(n.whole, micros_per));
        add_fraction_micros(n.fraction, static_cast<double>(micros_per));
    }
    void add_years(const Number& n, std::int64_t months_per) {
        add_months(times(n.whole, months_per));
        const double extra = std::rint(n.fraction * static_cast<double>(months_per));
        add_months(static_cast<std::int64_t>(extra));
    }
    std::int64_t times(std::int64_t a, std::int64_t b) const {
        std::int64_t out = 0;
        if (__builtin_mul_overflow(a, b, &out)) {
            overflow();
        }
        return out;
    }
    void add(std::int64_t& into, std::int64_t amount) const {
        if (__builtin_add_overflow(into, amount, &into)) {
            overflow();
        }
    }

    const Context& m_cx;
    IntervalSum m_sum;
};

// The unit of an ISO 8601 designator: Y, M, W, D before the T, H, M, S after it.
std::optional<Unit> iso_unit(char designator, bool in_time) {
    struct Designator {
        bool in_time;
        char letter;
        Unit unit;
    };
    static constexpr Designator k_designators[] = {
        {false, 'y', Unit::year},  {false, 'm', Unit::month}, {false, 'w', Unit::week},
        {false, 'd', Unit::day},   {true, 'h', Unit::hour},   {true, 'm', Unit::minute},
        {true, 's', Unit::second},
    };
    for (const Designator& d : k_designators) {
        if (d.in_time == in_time && d.letter == designator) {
            return d.unit;
        }
    }
    return std::nullopt;
}

// P[nY][nM][nW][nD][T[nH][nM][nS]]
Interval parse_iso_interval(const Context& cx, const std::string& l) {
    IntervalBuilder b(cx);
    Scanner sc{l};
    sc.pos = 1;  // 'p'
    bool in_time = false;
    bool any = false;
    while (!sc.done()) {
        if (sc.peek() == 't' && !in_time) {
            in_time = true;
            ++sc.pos;
            continue;
        }
        Number n;
        bool overflow = false;
        if (!scan_number(sc, n, overflow)) {
            cx.syntax("interval", k_invalid_datetime);
        }
        if (overflow) {
            cx.fail_value("interval field value out of range", k_interval_field_overflow);
        }
        const char designator = sc.peek();
        ++sc.pos;
        const auto unit = iso_unit(designator, in_time);
        if (!unit) {
            cx.syntax("interval", k_invalid_datetime);
        }
        b.apply(n, *unit);
        any = true;
    }
    if (!any) {
        cx.syntax("interval", k_invalid_datetime);
    }
    return b.result();
}

// [+-]H+:MM[:SS[.frac]] inside an interval (hours unbounded).
bool scan_interval_time(const Context& cx, const std::string& token, IntervalBuilder& b) {
    Scanner sc{token};
    const bool negative = scan_sign(sc);
    const auto clock = sc.clock(18, 1);
    if (!clock) {
        return false;
    }
    const double fraction = sc.fraction();
    if (!sc.done()) {
        return false;
    }
    if (clock->minutes > 59 || clock->seconds > 59) {
        cx.fail_value("interval field value out of range", k_interval_field_overflow);
    }
    IntervalBuilder part(cx);
    part.apply(Number{clock->hours, 0}, Unit::hour);
    part.apply(Number{clock->minutes, 0}, Unit::minute);
    part.apply(Number{clock->seconds, fraction}, Unit::second);
    Interval piece = part.result();
    b.add_micros(negative ? -piece.microseconds : piece.microseconds);
    return true;
}

// sql_standard year-month field: [+-]Y-M
bool scan_year_month(const std::string& token, IntervalBuilder& b) {
    Scanner sc{token};
    const bool negative = scan_sign(sc);
    std::int64_t years = 0;
    std::int64_t months = 0;
    if (!sc.digits(1, 9, years) || sc.peek() != '-') {
        return false;
    }
    ++sc.pos;
    if (!sc.digits(1, 2, months) || !sc.done() || months > 11) {
        return false;
    }
    const std::int64_t total = years * 12 + months;
    b.add_months(negative ? -total : total);
    return true;
}

}  // namespace

Value parse_interval(const Context& cx) {
    const std::string l = lowered(trimmed(cx.text));
    if (l.empty()) {
        cx.syntax("interval", k_invalid_datetime);
    }
    if (l[0] == 'p') {
        return Value(parse_iso_interval(cx, l));
    }
    std::vector<std::string> tokens;
    {
        std::size_t i = 0;
        if (l[0] == '@') {
            i = 1;
        }
        while (i < l.size()) {
            while (i < l.size() && is_blank(l[i])) {
                ++i;
            }
            const std::size_t start = i;
            while (i < l.size() && !is_blank(l[i])) {
                ++i;
            }
            if (i > start) {
                tokens.push_back(l.substr(start, i - start));
            }
        }
    }
    bool ago = false;
    if (!tokens.empty() && tokens.back() == "ago") {
        ago = true;
        tokens.pop_back();
    }
    if (tokens.empty()) {
        cx.syntax("interval", k_invalid_datetime);
    }
    IntervalBuilder b(cx);
    auto is_time_token = [](const std::string& token) {
        return token.find(':') != std::string::npos;
    };
    for (std::size_t t = 0; t < tokens.size(); ++t) {
        const std::string& token = tokens[t];
        if (is_time_token(token)) {
            if (!scan_interval_time(cx, token, b)) {
                cx.syntax("interval", k_invalid_datetime);
            }
            continue;
        }
        if (scan_year_month(token, b)) {
            continue;
        }
        Scanner sc{token};
        Number n;
        bool overflow = false;
        if (!scan_number(sc, n, overflow)) {
            cx.syntax("interval", k_invalid_datetime);
        }
        if (overflow) {
            cx.fail_value("interval field value out of range", k_interval_field_overflow);
        }
        std::string unit_word(token.substr(sc.pos));
        if (unit_word.empty() && t + 1 < tokens.size() && !tokens[t + 1].empty() &&
            is_alpha(tokens[t + 1][0])) {
            unit_word = tokens[++t];
        }
        if (unit_word.empty()) {
            // A bare number: days before a time field (sql_standard "3 4:05:06"), else seconds.
            const bool before_time = t + 1 < tokens.size() && is_time_token(tokens[t + 1]);
            if (!before_time && t + 1 < tokens.size()) {
                cx.syntax("interval", k_invalid_datetime);
            }
            b.apply(n, before_time ? Unit::day : Unit::second);
            continue;
        }
        const auto unit = unit_of(unit_word);
        if (!unit) {
            cx.syntax("interval", k_invalid_datetime);
        }
        b.apply(n, *unit);
    }
    if (ago) {
        b.negate();
    }
    return Value(b.result());
}

}  // namespace pg_ingest::detail::text_input
