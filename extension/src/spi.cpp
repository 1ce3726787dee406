#include "spi.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/builtins.h"
}

namespace pg_ingest::spi {

Arg int8_arg(int64_t v) {
    return Arg{INT8OID, Int64GetDatum(v)};
}
Arg oid_arg(Oid v) {
    return Arg{OIDOID, ObjectIdGetDatum(v)};
}
Arg text_arg(const std::string& s) {
    return Arg{TEXTOID, PointerGetDatum(string_to_text(s))};
}
Arg text_arg(const std::optional<std::string>& s) {
    return s ? text_arg(*s) : Arg{TEXTOID, Datum(0), true};
}
Arg bool_arg(bool v) {
    return Arg{BOOLOID, BoolGetDatum(v)};
}

Connection::Connection() {
    pg_call([] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "SPI_connect failed");
    });
}

Connection::~Connection() {
    SPI_finish();
}

uint64 exec(const std::string& sql, const std::vector<Arg>& args) {
    const int n = static_cast<int>(args.size());
    std::vector<Oid> types(n);
    std::vector<Datum> values(n);
    std::vector<char> nulls(n + 1, ' ');
    for (int i = 0; i < n; i++) {
        types[i] = args[i].type;
        values[i] = args[i].value;
        nulls[i] = args[i].null ? 'n' : ' ';
    }
    return pg_call([&] {
        int rc = SPI_execute_with_args(sql.c_str(), n, types.data(), values.data(), nulls.data(),
                                       false, 0);
        if (rc < 0)
            elog(ERROR, "pg_ingest: internal statement failed (%s): %s", SPI_result_code_string(rc),
                 sql.c_str());
        return SPI_processed;
    });
}

namespace {
Datum value(uint64 row, int col, bool* isnull) {
    return pg_call([&] {
        if (!SPI_tuptable || row >= SPI_processed)
            elog(ERROR, "pg_ingest: no result row %lu", static_cast<unsigned long>(row));
        return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
    });
}
}  // namespace

bool is_null(uint64 row, int col) {
    bool isnull;
    value(row, col, &isnull);
    return isnull;
}
int64_t get_int64(uint64 row, int col) {
    bool isnull;
    Datum d = value(row, col, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}
int32_t get_int32(uint64 row, int col) {
    bool isnull;
    Datum d = value(row, col, &isnull);
    return isnull ? 0 : DatumGetInt32(d);
}
Oid get_oid(uint64 row, int col) {
    bool isnull;
    Datum d = value(row, col, &isnull);
    return isnull ? InvalidOid : DatumGetObjectId(d);
}
bool get_bool(uint64 row, int col) {
    bool isnull;
    Datum d = value(row, col, &isnull);
    return isnull ? false : DatumGetBool(d);
}
std::optional<std::string> get_opt_text(uint64 row, int col) {
    const char* s = pg_call([&] {
        if (!SPI_tuptable || row >= SPI_processed)
            elog(ERROR, "pg_ingest: no result row %lu", static_cast<unsigned long>(row));
        return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
    });
    if (!s)
        return std::nullopt;
    return std::string(s);
}
std::string get_text(uint64 row, int col) {
    return get_opt_text(row, col).value_or(std::string());
}

}  // namespace pg_ingest::spi
