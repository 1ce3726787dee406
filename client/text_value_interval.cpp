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

// How a number of one unit adds up, as interval_in adds it: the whole part into one field, the
// fraction spilled into the same or a smaller one.
struct Unit {
    enum class Field { months, days, micros };
    Field field;
    std::int64_t per;  // `field` units in one
    Field spill;
    double spill_per;  // `spill` units in one
};

using F = Unit::Field;
constexpr Unit k_microsecond{F::micros, 1, F::micros, 1};
constexpr Unit k_millisecond{F::micros, 1000, F::micros, 1000};
constexpr Unit k_second{F::micros, k_usecs_per_second, F::micros, k_usecs_per_second};
constexpr Unit k_minute{F::micros, 60 * k_usecs_per_second, F::micros, 60.0 * k_usecs_per_second};
constexpr Unit k_hour{F::micros, 3600 * k_usecs_per_second, F::micros, 3600.0 * k_usecs_per_second};
constexpr Unit k_day{F::days, 1, F::micros, static_cast<double>(k_usecs_per_day)};
constexpr Unit k_week{F::days, 7, F::days, 7};
constexpr Unit k_month{F::months, 1, F::days, 30};
constexpr Unit k_year{F::months, 12, F::months, 12};
constexpr Unit k_decade{F::months, 120, F::months, 120};
constexpr Unit k_century{F::months, 1200, F::months, 1200};
constexpr Unit k_millennium{F::months, 12000, F::months, 12000};

std::optional<Unit> unit_of(const std::string& word) {
    static const std::pair<const char*, Unit> k_units[] = {
        {"microsecond", k_microsecond},
        {"microseconds", k_microsecond},
        {"microsecon", k_microsecond},
        {"us", k_microsecond},
        {"usec", k_microsecond},
        {"usecs", k_microsecond},
        {"useconds", k_microsecond},
        {"millisecond", k_millisecond},
        {"milliseconds", k_millisecond},
        {"millisecon", k_millisecond},
        {"ms", k_millisecond},
        {"msec", k_millisecond},
        {"msecs", k_millisecond},
        {"mseconds", k_millisecond},
        {"second", k_second},
        {"seconds", k_second},
        {"sec", k_second},
        {"secs", k_second},
        {"s", k_second},
        {"minute", k_minute},
        {"minutes", k_minute},
        {"min", k_minute},
        {"mins", k_minute},
        {"m", k_minute},
        {"hour", k_hour},
        {"hours", k_hour},
        {"hr", k_hour},
        {"hrs", k_hour},
        {"h", k_hour},
        {"day", k_day},
        {"days", k_day},
        {"d", k_day},
        {"week", k_week},
        {"weeks", k_week},
        {"w", k_week},
        {"month", k_month},
        {"months", k_month},
        {"mon", k_month},
        {"mons", k_month},
        {"year", k_year},
        {"years", k_year},
        {"yr", k_year},
        {"yrs", k_year},
        {"y", k_year},
        {"decade", k_decade},
        {"decades", k_decade},
        {"dec", k_decade},
        {"decs", k_decade},
        {"century", k_century},
        {"centuries", k_century},
        {"cent", k_century},
        {"c", k_century},
        {"millennium", k_millennium},
        {"millennia", k_millennium},
        {"mil", k_millennium},
        {"mils", k_millennium},
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

// The number a field must start with (see scan_number); syntax or overflow errors otherwise.
Number number_at(const Context& cx, Scanner& sc) {
    Number n;
    bool overflow = false;
    if (!scan_number(sc, n, overflow)) {
        cx.syntax("interval", k_invalid_datetime);
    }
    if (overflow) {
        cx.fail_value("interval field value out of range", k_interval_field_overflow);
    }
    return n;
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

    // n of `unit`: months from a fraction are rounded, days split into days and microseconds.
    void apply(const Number& n, const Unit& unit) {
        add(field(unit.field), times(n.whole, unit.per));
        switch (unit.spill) {
            case F::micros:
                add_fraction_micros(n.fraction, unit.spill_per);
                return;
            case F::days:
                add_fraction_days(n.fraction, unit.spill_per);
                return;
            case F::months:
                add_months(static_cast<std::int64_t>(std::rint(n.fraction * unit.spill_per)));
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
    std::int64_t& field(F f) {
        return f == F::months ? m_sum.months : f == F::days ? m_sum.days : m_sum.micros;
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
        {false, 'y', k_year}, {false, 'm', k_month}, {false, 'w', k_week},  {false, 'd', k_day},
        {true, 'h', k_hour},  {true, 'm', k_minute}, {true, 's', k_second},
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
        const Number n = number_at(cx, sc);
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
    auto clock = sc.clock(18, 1);
    if (!clock) {
        return false;
    }
    const bool has_fraction = sc.peek() == '.';
    const double fraction = sc.fraction();
    if (!sc.done()) {
        return false;
    }
    if (!clock->with_seconds && has_fraction) {
        // As the server reads it: two fields with a fraction are MM:SS.f, not HH:MM.
        clock->seconds = clock->minutes;
        clock->minutes = clock->hours;
        clock->hours = 0;
    }
    if (clock->minutes > 59 || clock->seconds > 59) {
        cx.fail_value("interval field value out of range", k_interval_field_overflow);
    }
    IntervalBuilder part(cx);
    part.apply(Number{clock->hours, 0}, k_hour);
    part.apply(Number{clock->minutes, 0}, k_minute);
    part.apply(Number{clock->seconds, fraction}, k_second);
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
        const Number n = number_at(cx, sc);
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
            b.apply(n, before_time ? k_day : k_second);
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
