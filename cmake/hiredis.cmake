# hiredis (Debian libhiredis-dev) for the shared Redis limiter in proxy/limits/io/,
# and the Redis integration test. Include from the top CMakeLists.txt after
# mp_http and the tests are defined:   include(cmake/hiredis.cmake)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
target_link_libraries(mp_http PUBLIC PkgConfig::HIREDIS)

if(BUILD_TESTING)
  # Starts its own redis-server on a free loopback port; skipped when there is none.
  find_program(REDIS_SERVER_PROGRAM redis-server)
  add_executable(redis_limiter_test tests/redis/redis_limiter_test.cpp)
  target_link_libraries(redis_limiter_test PRIVATE mp_http doctest::doctest)
  # The shared responses store (proxy/store/io/redis_store.hpp), same set-up.
  add_executable(redis_store_test tests/redis/redis_store_test.cpp)
  target_link_libraries(redis_store_test PRIVATE mp_http doctest::doctest)
  if(REDIS_SERVER_PROGRAM)
    add_test(NAME redis_limiter COMMAND redis_limiter_test)
    set_tests_properties(redis_limiter PROPERTIES TIMEOUT 120)
    add_test(NAME redis_store COMMAND redis_store_test)
    set_tests_properties(redis_store PROPERTIES TIMEOUT 120)
  endif()
endif()
