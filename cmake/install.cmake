# `cmake --install`. Include from the top
# CMakeLists.txt after the mistral-proxy target.
#
# Installed layout, for the prefix given at install time (PREFIX; SYSCONF is its
# configuration folder by GNUInstallDirs' rule: /etc for /usr, /etc/opt/NAME for
# /opt/NAME, PREFIX/etc otherwise; proxy/config/install_layout.cpp applies the
# same rule to find it again from the binary's own location):
#   PREFIX/bin/mistral-proxy
#   PREFIX/share/mistral-proxy/rules/            the shipped rule files
#   PREFIX/share/mistral-proxy/config/           the shipped configs for this prefix
#   SYSCONF/mistral-proxy/mistral-proxy.yaml     the operator's config, the default of
#   SYSCONF/mistral-proxy/mistral-proxy-eu.yaml    `mistral-proxy` with no --config; the
#   SYSCONF/mistral-proxy/keys.env (0600)          package's conffiles; cmake --install
#                                                  never overwrites an edited one
#   PREFIX/lib/systemd/system/mistral-proxy.service
#   PREFIX/lib/sysusers.d/mistral-proxy.conf     the system user, for systemd-sysusers
#   PREFIX/share/man/man1/mistral-proxy.1.gz
#   PREFIX/share/doc/mistral-proxy/README.md
# The installed configs keep their state in /var/lib/mistral-proxy (the unit's
# StateDirectory=), never in the read-only prefix, and name the rule file by a
# path relative to the config when SYSCONF is inside PREFIX (the tree can be
# moved), by its absolute path otherwise (/etc -> /usr/share/...).
include(GNUInstallDirs)

target_compile_definitions(mistral-proxy PRIVATE
  MISTRAL_PROXY_INSTALL_BINDIR="${CMAKE_INSTALL_BINDIR}"
  MISTRAL_PROXY_INSTALL_SYSCONFDIR="${CMAKE_INSTALL_SYSCONFDIR}")

set(mp_datadir ${CMAKE_INSTALL_DATAROOTDIR}/mistral-proxy)

install(TARGETS mistral-proxy RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES rules/mistral.yaml rules/mistral-schema.yaml DESTINATION ${mp_datadir}/rules)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/mistral-proxy)
# systemd looks in lib/ (not the multiarch CMAKE_INSTALL_LIBDIR).
install(FILES packaging/mistral-proxy.sysusers DESTINATION lib/sysusers.d RENAME mistral-proxy.conf)

# The man page with this version, compressed as Debian ships them (gzip -n: no
# name or time stamp inside, so the package is reproducible).
configure_file(packaging/mistral-proxy.1.in ${CMAKE_BINARY_DIR}/mistral-proxy.1 @ONLY)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/mistral-proxy.1.gz
  COMMAND gzip -9 -n -f -k ${CMAKE_BINARY_DIR}/mistral-proxy.1
  DEPENDS ${CMAKE_BINARY_DIR}/mistral-proxy.1 VERBATIM)
add_custom_target(man_page ALL DEPENDS ${CMAKE_BINARY_DIR}/mistral-proxy.1.gz)
install(FILES ${CMAKE_BINARY_DIR}/mistral-proxy.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# The configs and the unit name paths of the prefix chosen at install time, so
# they are written then (cmake/install-config.cmake), not at configure time.
install(CODE "
  set(mp_source_dir [[${CMAKE_SOURCE_DIR}]])
  set(mp_work_dir [[${CMAKE_BINARY_DIR}/install-config]])
  set(mp_bindir [[${CMAKE_INSTALL_BINDIR}]])
  set(mp_sysconfdir [[${CMAKE_INSTALL_SYSCONFDIR}]])
  set(mp_datadir [[${mp_datadir}]])
")
install(SCRIPT cmake/install-config.cmake)
