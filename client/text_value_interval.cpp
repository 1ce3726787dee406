// parse_text_value for interval: the server's output styles postgres, postgres_verbose,
// iso_8601 and sql_standard, with fractional units distributed as interval_in does. Fields are
// read right to left as DecodeInterval reads them: a bare number takes its unit from the field
// to its right, and a unit given twice is an error.
#include <algorithm>
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

// The fields DecodeInterval tracks (its fmask): each may be given once.
constexpr unsigned k_bit_microsecond = 1U << 0;
constexpr unsigned k_bit_millisecond = 1U << 1;
constexpr unsigned k_bit_second = 1U << 2;
constexpr unsigned k_bit_minute = 1U << 3;
constexpr unsigned k_bit_hour = 1U << 4;
constexpr unsigned k_bit_day = 1U << 5;
constexpr unsigned k_bit_week = 1U << 6;
constexpr unsigned k_bit_month = 1U << 7;
constexpr unsigned k_bit_year = 1U << 8;
constexpr unsigned k_bit_decade = 1U << 9;
constexpr unsigned k_bit_century = 1U << 10;
constexpr unsigned k_bit_millennium = 1U << 11;
// Seconds with a fraction count as milli- and microseconds too; a clock field as all of these.
constexpr unsigned k_bits_all_seconds = k_bit_second | k_bit_millisecond | k_bit_microsecond;
constexpr unsigned k_bits_clock = k_bit_hour | k_bit_minute | k_bits_all_seconds;

// How a number of one unit adds up, as interval_in adds it: the whole part into one field, the
// fraction spilled into the same or a smaller one.
struct Unit {
    enum class Field { months, days, micros };
    Field field;
    std::int64_t per;  // `field` units in one
    Field spill;
    double spill_per;  // `spill` units in one
    unsigned bit;      // the field it fills, of those that may be given once
};

using F = Unit::Field;
constexpr Unit k_microsecond{F::micros, 1, F::micros, 1, k_bit_microsecond};
constexpr Unit k_millisecond{F::micros, 1000, F::micros, 1000, k_bit_millisecond};
constexpr Unit k_second{F::micros, k_usecs_per_second, F::micros, k_usecs_per_second, k_bit_second};
constexpr Unit k_minute{F::micros, 60 * k_usecs_per_second, F::micros, 60.0 * k_usecs_per_second,
                        k_bit_minute};
constexpr Unit k_hour{F::micros, 3600 * k_usecs_per_second, F::micros, 3600.0 * k_usecs_per_second,
                      k_bit_hour};
constexpr Unit k_day{F::days, 1, F::micros, static_cast<double>(k_usecs_per_day), k_bit_day};
constexpr Unit k_week{F::days, 7, F::days, 7, k_bit_week};
constexpr Unit k_month{F::months, 1, F::days, 30, k_bit_month};
constexpr Unit k_year{F::months, 12, F::months, 12, k_bit_year};
constexpr Unit k_decade{F::months, 120, F::months, 120, k_bit_decade};
constexpr Unit k_century{F::months, 1200, F::months, 1200, k_bit_century};
constexpr Unit k_millennium{F::months, 12000, F::months, 12000, k_bit_millennium};

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
    void set_micros(std::int64_t micros) { m_sum.micros = micros; }

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

// The unit of an ISO 8601 designator: Y, M, W, D before the T, H, M, S after it (upper case
// only, as the server takes them).
std::optional<Unit> iso_unit(char designator, bool in_time) {
    struct Designator {
        bool in_time;
        char letter;
        Unit unit;
    };
    static constexpr Designator k_designators[] = {
        {false, 'Y', k_year}, {false, 'M', k_month}, {false, 'W', k_week},  {false, 'D', k_day},
        {true, 'H', k_hour},  {true, 'M', k_minute}, {true, 'S', k_second},
    };
    for (const Designator& d : k_designators) {
        if (d.in_time == in_time && d.letter == designator) {
            return d.unit;
        }
    }
    return std::nullopt;
}

// P[nY][nM][nW][nD][T[nH][nM][nS]], exactly as given: the server reads this form only from an
// upper-case P at the very start, without blanks, and its numbers never with a '+'.
Interval parse_iso_interval(const Context& cx) {
    IntervalBuilder b(cx);
    Scanner sc{cx.text};
    sc.pos = 1;  // 'P'
    if (sc.done()) {
        cx.syntax("interval", k_invalid_datetime);
    }
    bool in_time = false;
    while (!sc.done()) {
        if (sc.peek() == 'T' && !in_time) {
            in_time = true;
            ++sc.pos;
            continue;
        }
        if (sc.peek() == '+') {
            cx.syntax("interval", k_invalid_datetime);
        }
        const Number n = number_at(cx, sc);
        const char designator = sc.peek();
        ++sc.pos;
        const auto unit = iso_unit(designator, in_time);
        if (!unit) {
            cx.syntax("interval", k_invalid_datetime);
        }
        b.apply(n, *unit);
    }
    return b.result();
}

// [+-]H+:MM[:SS[.frac]] inside an interval (hours unbounded), signed microseconds; nullopt when
// the token has another form. Two fields are MM:SS when a fraction follows (as the server
// reads them) or the column is interval minute to second, else HH:MM.
std::optional<std::int64_t> clock_micros(const Context& cx, const std::string& token,
                                         bool minutes_seconds) {
    Scanner sc{token};
    const bool negative = scan_sign(sc);
    auto clock = sc.clock(18, 1);
    if (!clock) {
        return std::nullopt;
    }
    const bool has_fraction = sc.peek() == '.';
    const double fraction = sc.fraction();
    if (!sc.done()) {
        return std::nullopt;
    }
    if (!clock->with_seconds && (has_fraction || minutes_seconds)) {
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
    const std::int64_t micros = part.result().microseconds;
    return negative ? -micros : micros;
}

// sql_standard year-month field: [+-]Y-M, in months; nullopt when the token has another form.
// More than 11 months: `out_of_range`.
std::optional<std::int64_t> year_month(const std::string& token, bool& out_of_range) {
    Scanner sc{token};
    const bool negative = scan_sign(sc);
    std::int64_t years = 0;
    std::int64_t months = 0;
    if (!sc.digits(1, 9, years) || sc.peek() != '-') {
        return std::nullopt;
    }
    ++sc.pos;
    if (!sc.digits(1, 18, months) || !sc.done()) {
        return std::nullopt;
    }
    out_of_range = months > 11;
    const std::int64_t total = years * 12 + months;
    return negative ? -total : total;
}

// interval(typmod) fields, as the server's INTERVAL_MASK bits of INTERVAL_RANGE(typmod).
constexpr unsigned k_range_month = 1U << 1;
constexpr unsigned k_range_year = 1U << 2;
constexpr unsigned k_range_day = 1U << 3;
constexpr unsigned k_range_hour = 1U << 10;
constexpr unsigned k_range_minute = 1U << 11;
constexpr unsigned k_range_second = 1U << 12;

unsigned range_of(std::int32_t typmod) {
    return typmod < 0 ? 0x7FFFU : (static_cast<unsigned>(typmod) >> 16) & 0x7FFFU;
}

// The unit of the rightmost number when no unit follows it: the column's smallest field
// ('5' is 5 years in an interval year column), seconds for a plain interval.
Unit bare_number_unit(unsigned range) {
    switch (range) {
        case k_range_year:
            return k_year;
        case k_range_month:
        case k_range_year | k_range_month:
            return k_month;
        case k_range_day:
            return k_day;
        case k_range_hour:
        case k_range_day | k_range_hour:
            return k_hour;
        case k_range_minute:
        case k_range_hour | k_range_minute:
        case k_range_day | k_range_hour | k_range_minute:
            return k_minute;
        default:
            return k_second;
    }
}

// One field of postgres-style input, as the server's ParseDateTime splits it ("2h" is two).
struct Field {
    enum class Kind { number, year_month, clock, unit, ago };
    Kind kind = Kind::number;
    bool out_of_range = false;  // number or year_month: 22015 once read (right to left)
    bool signed_field = false;  // starts with '+' or '-'
    bool negative = false;      // starts with '-'
    Number number;              // number; year_month: the months in `whole`
    Unit unit{};                // unit
    std::string text;           // clock
};

std::vector<Field> fields_of(const Context& cx, const std::string& l) {
    std::vector<std::string> tokens;
    std::size_t i = l[0] == '@' ? 1 : 0;
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
    std::vector<Field> fields;
    for (const std::string& token : tokens) {
        Field f;
        f.signed_field = token[0] == '+' || token[0] == '-';
        f.negative = token[0] == '-';
        if (token == "ago") {
            f.kind = Field::Kind::ago;
        } else if (token.find(':') != std::string::npos) {
            f.kind = Field::Kind::clock;
            f.text = token;
        } else if (const auto months = year_month(token, f.out_of_range)) {
            f.kind = Field::Kind::year_month;
            f.number.whole = *months;
        } else if (is_alpha(token[0])) {
            const auto unit = unit_of(token);
            if (!unit) {
                cx.syntax("interval", k_invalid_datetime);
            }
            f.kind = Field::Kind::unit;
            f.unit = *unit;
        } else {
            Scanner sc{token};
            if (!scan_number(sc, f.number, f.out_of_range)) {
                cx.syntax("interval", k_invalid_datetime);
            }
            fields.push_back(f);
            if (sc.done()) {
                continue;
            }
            const auto unit = unit_of(token.substr(sc.pos));  // "2h", "1.5days"
            if (!unit) {
                cx.syntax("interval", k_invalid_datetime);
            }
            f = Field{};
            f.kind = Field::Kind::unit;
            f.unit = *unit;
        }
        fields.push_back(f);
    }
    return fields;
}

}  // namespace

Value parse_interval(const Context& cx, std::int32_t typmod, IntervalStyle style) {
    if (!cx.text.empty() && cx.text[0] == 'P') {
        return Value(parse_iso_interval(cx));
    }
    const std::string l = lowered(trimmed(cx.text));
    if (l.empty()) {
        cx.syntax("interval", k_invalid_datetime);
    }
    const std::vector<Field> fields = fields_of(cx, l);
    auto bad = [&] { cx.syntax("interval", k_invalid_datetime); };
    // sql_standard: "-1 2:00:00" is -(1 day 2 hours) when no field but the first has a sign.
    const bool force_negative = style == IntervalStyle::sql_standard && !fields.empty() &&
                                fields[0].negative &&
                                std::none_of(fields.begin() + 1, fields.end(),
                                             [](const Field& f) { return f.signed_field; });
    const unsigned range = range_of(typmod);
    IntervalBuilder b(cx);
    unsigned seen = 0;
    std::optional<Unit> unit_to_the_right;
    bool ago = false;
    for (std::size_t i = fields.size(); i-- > 0;) {
        const Field& f = fields[i];
        if (f.out_of_range) {
            cx.fail_value("interval field value out of range", k_interval_field_overflow);
        }
        unsigned bits = 0;
        switch (f.kind) {
            case Field::Kind::ago:
                if (i + 1 != fields.size()) {
                    bad();
                }
                ago = true;
                continue;
            case Field::Kind::unit:
                // Stricter than the server, which lets a unit without a number stand (or be
                // skipped): here a unit always follows its number.
                if (i == 0 || fields[i - 1].kind != Field::Kind::number) {
                    bad();
                }
                unit_to_the_right = f.unit;
                continue;
            case Field::Kind::clock: {
                auto micros = clock_micros(cx, f.text, range == (k_range_minute | k_range_second));
                if (!micros) {
                    bad();
                }
                if (force_negative && *micros > 0) {
                    *micros = -*micros;
                }
                // Replaces, not adds to, what the fields to its right put in the time part (the
                // spill of "1.5 days"): the server assigns it so ("4:05 1.5 days" is 1 day 04:05).
                b.set_micros(*micros);
                bits = k_bits_clock;
                unit_to_the_right = k_day;  // "3 4:05:06": the number before a clock is days
                break;
            }
            case Field::Kind::year_month: {
                const std::int64_t months = f.number.whole;
                b.add_months(force_negative && months > 0 ? -months : months);
                bits = k_bit_month;
                unit_to_the_right = k_month;
                break;
            }
            case Field::Kind::number: {
                if (i + 1 < fields.size() && fields[i + 1].kind == Field::Kind::ago) {
                    bad();  // "5 ago": no unit
                }
                const Unit unit = unit_to_the_right.value_or(bare_number_unit(range));
                Number n = f.number;
                if (force_negative) {
                    n.whole = n.whole > 0 ? -n.whole : n.whole;
                    n.fraction = n.fraction > 0 ? -n.fraction : n.fraction;
                }
                b.apply(n, unit);
                bits = unit.bit == k_bit_second && n.fraction != 0 ? k_bits_all_seconds : unit.bit;
                // "1 2 hours" is 1 day 2 hours; after any other unit a second number repeats it.
                unit_to_the_right = unit.bit == k_bit_hour ? k_day : unit;
                break;
            }
        }
        if ((bits & seen) != 0) {
            bad();
        }
        seen |= bits;
    }
    if (seen == 0) {
        bad();
    }
    if (ago) {
        b.negate();
    }
    return Value(b.result());
}

}  // namespace pg_ingest::detail::text_input
