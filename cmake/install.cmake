# `cmake --install` and the Debian package (cpack -G DEB). Include from the top
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

# --- the Debian package: cpack -G DEB in the build folder -------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mistral-proxy)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "mistral-proxy maintainers <maintainers@mistral-proxy.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local proxy that lets OpenAI clients talk to Mistral AI")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"mistral-proxy rewrites what Mistral would refuse from OpenAI clients (removed
model ids, OpenAI model names and fields, tool-call ids, message order), routes
each call to the right Mistral host with the right key, keeps the account
within its rate limits, and turns Mistral's answers back into what OpenAI SDKs
expect. The systemd unit is enabled but not started on installation: put the
keys in /etc/mistral-proxy/keys.env, then start mistral-proxy.service.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
# Library dependencies from dpkg-shlibdeps; adduser for the maintainer scripts;
# ca-certificates for the CAs that verify Mistral's hosts (an upstream without
# ca_file trusts the system's: a slim image, such as the container's, has none,
# and libssl3 only recommends them).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, ca-certificates")
set(CPACK_STRIP_FILES ON)
# Installed with DESTDIR and the real prefix, so that the install script sees
# /usr and puts the configs in /etc (as GNUInstallDirs does for /usr).
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
  ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
  ${CMAKE_SOURCE_DIR}/packaging/debian/postrm
  ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles)
include(CPack)
