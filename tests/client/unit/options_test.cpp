// Options: the connector vocabulary, parsed from text and validated.
#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>
#include <pg_ingest/options.hpp>

using pg_ingest::ConflictMode;
using pg_ingest::ExceptionMode;
using pg_ingest::Options;
using pg_ingest::WriteMode;

namespace {

// The Error message for set(key, value), expecting failure; checks the error's classification.
std::string set_error(const std::string& key, const std::string& value) {
    Options options;
    try {
        options.set(key, value);
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "22023");
        BOOST_TEST(!error.retryable());
        return error.what();
    }
    BOOST_FAIL("set(" << key << ", " << value << ") was accepted");
    return {};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(options)

BOOST_AUTO_TEST_CASE(defaults_are_the_connector_defaults) {
    const Options options;
    BOOST_TEST(options.batch_size == 50000u);
    BOOST_TEST(options.batch_write_timeout.count() == 50000);
    BOOST_TEST(options.max_retry_times == 3);
    BOOST_TEST(options.retry_wait_time.count() == 100);
    BOOST_TEST(options.connection_max_active == 5u);
    BOOST_TEST((options.conflict_mode == ConflictMode::upsert));
    BOOST_TEST((options.write_mode == WriteMode::copy));
    BOOST_TEST((options.exception_mode == ExceptionMode::ignore));
    BOOST_TEST(options.target_schema == "public");
    BOOST_TEST(!options.case_sensitive);
    BOOST_TEST(!options.verbose);
    BOOST_TEST(options.background_flush);
    BOOST_TEST(options.max_temp_file_size == 100663296u);
    BOOST_TEST(options.clean_temp_data);
    BOOST_CHECK_NO_THROW(options.validate());
}

BOOST_AUTO_TEST_CASE(from_map_reads_the_seed_example_with_case_insensitive_keys) {
    const auto options = Options::from_map({{"maxretrytimes", "2"},
                                            {"BatchSize", "50000"},
                                            {"connectionmaxactive", "5"},
                                            {"conflictmode", "ignore"},
                                            {"usecopy", "0"},
                                            {"targetschema", "public"},
                                            {"exceptionmode", "ignore"},
                                            {"casesensitive", "0"},
                                            {"writemode", "1"},
                                            {"RETRYWAITTIME", "200"},
                                            {"batchwritetimeoutms", "1500"},
                                            {"verbose", "true"},
                                            {"sink.async_load_parallelism", "2"},
                                            {"sink.async_load_queue_size", "4"},
                                            {"sink.max_temp_file_size", "100663296"},
                                            {"sink.clean_temp_data", "false"}});
    BOOST_TEST(options.max_retry_times == 2);
    BOOST_TEST((options.conflict_mode == ConflictMode::ignore));
    BOOST_TEST((options.write_mode == WriteMode::copy));
    BOOST_TEST(options.retry_wait_time.count() == 200);
    BOOST_TEST(options.batch_write_timeout.count() == 1500);
    BOOST_TEST(options.verbose);
    BOOST_TEST(options.async_load_parallelism == 2u);
    BOOST_TEST(options.async_load_queue_size == 4u);
    BOOST_TEST(!options.clean_temp_data);
}

// Every key of the seed vocabulary (and ours) lands in its own field: each is given a value
// other than its default.
BOOST_AUTO_TEST_CASE(every_option_key_sets_its_own_field) {
    const auto options = Options::from_map({{"batchsize", "7"},
                                            {"batchbytes", "4096"},
                                            {"batchwritetimeoutms", "123"},
                                            {"maxretrytimes", "9"},
                                            {"retrywaittime", "11"},
                                            {"connectionmaxactive", "3"},
                                            {"conflictmode", "strict"},
                                            {"writemode", "2"},
                                            {"exceptionmode", "strict"},
                                            {"targetschema", "Sales"},
                                            {"casesensitive", "1"},
                                            {"verbose", "1"},
                                            {"backgroundflush", "0"},
                                            {"conflictcolumns", "a,b"},
                                            {"updatecolumns", "c"},
                                            {"flushtimeoutms", "4000"},
                                            {"connecttimeoutms", "2500"},
                                            {"async_load_parallelism", "6"},
                                            {"async_load_queue_size", "8"},
                                            {"max_temp_file_size", "1048576"},
                                            {"clean_temp_data", "0"}});
    BOOST_TEST(options.batch_size == 7u);
    BOOST_TEST(options.batch_bytes == 4096u);
    BOOST_TEST(options.batch_write_timeout.count() == 123);
    BOOST_TEST(options.max_retry_times == 9);
    BOOST_TEST(options.retry_wait_time.count() == 11);
    BOOST_TEST(options.connection_max_active == 3u);
    BOOST_TEST((options.conflict_mode == ConflictMode::strict));
    BOOST_TEST((options.write_mode == WriteMode::upsert));
    BOOST_TEST((options.exception_mode == ExceptionMode::strict));
    BOOST_TEST(options.target_schema == "Sales");
    BOOST_TEST(options.case_sensitive);
    BOOST_TEST(options.verbose);
    BOOST_TEST(!options.background_flush);
    BOOST_TEST(options.conflict_columns == (std::vector<std::string>{"a", "b"}));
    BOOST_TEST(options.update_columns == (std::vector<std::string>{"c"}));
    BOOST_TEST(options.flush_timeout.count() == 4000);
    BOOST_TEST(options.connect_timeout.count() == 2500);
    BOOST_TEST(options.async_load_parallelism == 6u);
    BOOST_TEST(options.async_load_queue_size == 8u);
    BOOST_TEST(options.max_temp_file_size == 1048576u);
    BOOST_TEST(!options.clean_temp_data);
}

// usecopy only says copy; a writemode given in the same map decides, in whatever order.
BOOST_AUTO_TEST_CASE(a_writemode_in_the_map_decides_over_usecopy) {
    BOOST_TEST((Options::from_map({{"usecopy", "1"}, {"writemode", "0"}}).write_mode ==
                WriteMode::insert));
    BOOST_TEST((Options::from_map({{"UseCopy", "1"}, {"sink.writemode", "2"}}).write_mode ==
                WriteMode::upsert));
    BOOST_TEST((Options::from_map({{"usecopy", "1"}}).write_mode == WriteMode::copy));
    Options insert;
    insert.set("writemode", "0");
    insert.set("usecopy", "1");  // set() applies what it is given, in order
    BOOST_TEST((insert.write_mode == WriteMode::copy));
    BOOST_CHECK_THROW(Options::from_map({{"usecopy", "maybe"}, {"writemode", "0"}}),
                      pg_ingest::Error);
}

// A bad value of every numeric, boolean and duration key is an Error (22023) naming the key.
BOOST_AUTO_TEST_CASE(a_bad_value_of_any_key_names_the_key) {
    for (const auto& [key, value] :
         std::vector<std::pair<std::string, std::string>>{{"batchwritetimeoutms", "-1"},
                                                          {"batchwritetimeoutms", "soon"},
                                                          {"maxretrytimes", "-2"},
                                                          {"verbose", "loud"},
                                                          {"backgroundflush", "2"},
                                                          {"async_load_parallelism", "0"},
                                                          {"async_load_queue_size", "0"},
                                                          {"max_temp_file_size", "0"},
                                                          {"max_temp_file_size", "big"},
                                                          {"clean_temp_data", "perhaps"},
                                                          {"flushtimeoutms", "x"},
                                                          {"connecttimeoutms", "-5"},
                                                          {"batchbytes", "0"}}) {
        BOOST_TEST_CONTEXT(key << "=" << value) {
            try {
                Options().set(key, value);
                BOOST_FAIL("accepted");
            } catch (const pg_ingest::Error& error) {
                BOOST_TEST(error.sqlstate() == "22023");
                BOOST_TEST(std::string(error.what()).find(key) != std::string::npos, error.what());
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(writemode_numbers_follow_the_seed_and_names_are_accepted) {
    Options options;
    options.set("writemode", "0");
    BOOST_TEST((options.write_mode == WriteMode::insert));
    options.set("writemode", "2");
    BOOST_TEST((options.write_mode == WriteMode::upsert));
    options.set("writemode", "1");
    BOOST_TEST((options.write_mode == WriteMode::copy));
    options.set("writemode", "INSERT");
    BOOST_TEST((options.write_mode == WriteMode::insert));
    options.set("writemode", "upsert");
    BOOST_TEST((options.write_mode == WriteMode::upsert));
    options.set("writemode", "Copy");
    BOOST_TEST((options.write_mode == WriteMode::copy));
    BOOST_TEST(std::string(pg_ingest::to_string(WriteMode::insert)) == "insert");
}

BOOST_AUTO_TEST_CASE(backgroundflush_is_a_boolean) {
    Options options;
    options.set("backgroundflush", "0");
    BOOST_TEST(!options.background_flush);
    options.set("BackgroundFlush", "true");
    BOOST_TEST(options.background_flush);
    BOOST_CHECK_EXCEPTION(options.set("backgroundflush", "sometimes"), pg_ingest::Error,
                          [](const pg_ingest::Error& e) {
                              return e.sqlstate() == "22023" &&
                                     std::string(e.what()).find("backgroundflush") !=
                                         std::string::npos;
                          });
    BOOST_TEST(options.background_flush);  // unchanged by the refused value
}

BOOST_AUTO_TEST_CASE(every_conflict_mode_name_is_accepted) {
    Options options;
    for (const auto& [name, mode] :
         std::map<std::string, ConflictMode>{{"upsert", ConflictMode::upsert},
                                             {"UPDATE", ConflictMode::update},
                                             {"ignore", ConflictMode::ignore},
                                             {"strict", ConflictMode::strict}}) {
        options.set("conflictmode", name);
        BOOST_TEST((options.conflict_mode == mode), name);
    }
}

BOOST_AUTO_TEST_CASE(column_lists_split_on_commas_and_keep_quoted_names) {
    Options options;
    options.set("conflictcolumns", " id , \"Tenant, Id\" ");
    BOOST_TEST_REQUIRE(options.conflict_columns.size() == 2u);
    BOOST_TEST(options.conflict_columns[0] == "id");
    BOOST_TEST(options.conflict_columns[1] == "Tenant, Id");
    options.set("updatecolumns", "a,b,,c");
    BOOST_TEST(options.update_columns.size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_column_list_with_a_stray_quote_is_refused) {
    for (const char* value : {"\"id,name", "id,\"name", "a\"b\"c", "\"\"", "\"a\"b", "\"a\" b"}) {
        BOOST_TEST_CONTEXT(value) {
            BOOST_TEST(set_error("conflictcolumns", value).find("conflictcolumns") !=
                       std::string::npos);
            BOOST_TEST(set_error("updatecolumns", value).find("updatecolumns") !=
                       std::string::npos);
        }
    }
    Options options;
    options.set("conflictcolumns", "\"a\"\"b\" , c");
    BOOST_TEST_REQUIRE(options.conflict_columns.size() == 2u);
    BOOST_TEST(options.conflict_columns[0] == "a\"b");
    options.set("conflictcolumns", "  ");
    BOOST_TEST(options.conflict_columns.empty());
}

BOOST_AUTO_TEST_CASE(validate_rejects_times_beyond_a_year) {
    for (auto field : {&Options::batch_write_timeout, &Options::retry_wait_time,
                       &Options::flush_timeout, &Options::connect_timeout}) {
        Options options;
        options.*field = std::chrono::milliseconds::max();
        BOOST_CHECK_THROW(options.validate(), pg_ingest::Error);
        options.*field = std::chrono::hours(24 * 365);
        BOOST_CHECK_NO_THROW(options.validate());
    }
}

BOOST_AUTO_TEST_CASE(bad_values_name_the_option_and_the_value) {
    const std::string message = set_error("batchsize", "lots");
    BOOST_TEST(message.find("batchsize") != std::string::npos, message);
    BOOST_TEST(message.find("'lots'") != std::string::npos, message);
    BOOST_TEST(set_error("batchsize", "0").find("'0'") != std::string::npos);
    BOOST_TEST(set_error("batchsize", "-5").find("'-5'") != std::string::npos);
    BOOST_TEST(set_error("writemode", "3").find("writemode") != std::string::npos);
    BOOST_TEST(set_error("conflictmode", "merge").find("'merge'") != std::string::npos);
    BOOST_TEST(set_error("exceptionmode", "loud").find("exceptionmode") != std::string::npos);
    BOOST_TEST(set_error("casesensitive", "maybe").find("'maybe'") != std::string::npos);
    BOOST_TEST(set_error("retrywaittime", "99999999999999999999999").find("retrywaittime") !=
               std::string::npos);
    BOOST_TEST(set_error("connectionmaxactive", "0").find("connectionmaxactive") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(unknown_option_is_named_without_echoing_its_value) {
    const std::string message = set_error("password", "s3cret");
    BOOST_TEST(message.find("password") != std::string::npos, message);
    BOOST_TEST(message.find("s3cret") == std::string::npos, message);
    BOOST_CHECK_THROW(Options::from_map({{"batchsize", "10"}, {"bogus", "1"}}), pg_ingest::Error);
}

BOOST_AUTO_TEST_CASE(one_option_given_twice_under_different_spellings_is_an_error) {
    for (const auto& [first, second] :
         std::vector<std::pair<std::string, std::string>>{{"batchSize", "batchsize"},
                                                          {"sink.batchsize", "batchsize"},
                                                          {"BATCHSIZE ", "Sink.BatchSize"}}) {
        try {
            Options::from_map({{first, "10"}, {second, "20"}});
            BOOST_FAIL("accepted " << first << " and " << second);
        } catch (const pg_ingest::Error& error) {
            const std::string message = error.what();
            BOOST_TEST(error.sqlstate() == "22023");
            BOOST_TEST(message.find("batchsize is given twice") != std::string::npos, message);
            BOOST_TEST(message.find("10") == std::string::npos, message);  // values not echoed
        }
    }
}

BOOST_AUTO_TEST_CASE(a_failed_set_leaves_the_options_unchanged) {
    Options options;
    options.set("batchsize", "10");
    BOOST_CHECK_THROW(options.set("batchsize", "x"), pg_ingest::Error);
    BOOST_TEST(options.batch_size == 10u);
}

BOOST_AUTO_TEST_CASE(validate_rejects_fields_set_out_of_range_from_code) {
    Options options;
    options.batch_size = 0;
    BOOST_CHECK_THROW(options.validate(), pg_ingest::Error);
    options = Options();
    options.max_retry_times = -1;
    BOOST_CHECK_THROW(options.validate(), pg_ingest::Error);
    options = Options();
    options.target_schema.clear();
    BOOST_CHECK_THROW(options.validate(), pg_ingest::Error);
}

BOOST_AUTO_TEST_SUITE_END()
