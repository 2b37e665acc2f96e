# Run by `cmake --install` (and cpack) with CMAKE_INSTALL_PREFIX set to the prefix
# chosen then; cmake/install.cmake sets mp_source_dir, mp_work_dir, mp_bindir,
# mp_sysconfdir and mp_datadir first. Writes and installs:
#   - the shipped configs, made to work installed: the rule file of this prefix,
#     state in /var/lib/mistral-proxy (the systemd unit's StateDirectory=);
#     into PREFIX/share/mistral-proxy/config/ always, and into
#     SYSCONF/mistral-proxy/ unless the operator has changed the copy there;
#   - keys.env (0600) into SYSCONF/mistral-proxy/ unless one is there already;
#   - the systemd unit, with this prefix's binary and config folder.
set(prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "(.)/+$" "\\1" prefix "${prefix}")

# The configuration folder: GNUInstallDirs' rule, as in proxy/config/install_layout.cpp.
if(IS_ABSOLUTE "${mp_sysconfdir}")
  set(sysconf "${mp_sysconfdir}")
elseif(prefix STREQUAL "/" OR prefix STREQUAL "/usr")
  set(sysconf "/${mp_sysconfdir}")
elseif(prefix MATCHES "^/opt/(.+)$")
  set(sysconf "/${mp_sysconfdir}/opt/${CMAKE_MATCH_1}")
else()
  set(sysconf "${prefix}/${mp_sysconfdir}")
endif()
set(confdir "${sysconf}/mistral-proxy")
set(sharedir "${prefix}/${mp_datadir}")
set(state_dir /var/lib/mistral-proxy)

# config/X.yaml as installed in folder `dir`: its rule file and state_dir replaced.
function(installed_config name dir out)
  set(rules "${sharedir}/rules/mistral.yaml")
  string(FIND "${dir}/" "${prefix}/" at)
  if(at EQUAL 0)  # inside the prefix: relative, so that the tree can move
    file(RELATIVE_PATH rules "${dir}" "${rules}")
  endif()
  file(READ "${mp_source_dir}/config/${name}" text)
  foreach(key rules state_dir)
    if(NOT text MATCHES "\n${key}: [^\n]*")
      message(FATAL_ERROR "config/${name} has no top-level `${key}:` line for cmake/install-config.cmake to replace")
    endif()
  endforeach()
  # The value up to its trailing comment, if any.
  string(REGEX REPLACE "\nrules: [^\n#]*[^ \n#]" "\nrules: [${rules}]" text "${text}")
  string(REGEX REPLACE "\nstate_dir: [^\n#]*[^ \n#]" "\nstate_dir: ${state_dir}" text "${text}")
  file(WRITE "${out}" "# Installed from config/${name}: the rules of this install, state in ${state_dir}\n# (the systemd unit's StateDirectory).\n${text}")
endfunction()

file(REMOVE_RECURSE "${mp_work_dir}")
foreach(name mistral-proxy.yaml mistral-proxy-eu.yaml)
  installed_config(${name} "${sharedir}/config" "${mp_work_dir}/share/${name}")
  file(INSTALL DESTINATION "${sharedir}/config" TYPE FILE FILES "${mp_work_dir}/share/${name}")

  installed_config(${name} "${confdir}" "${mp_work_dir}/etc/${name}")
  set(installed "$ENV{DESTDIR}${confdir}/${name}")
  if(EXISTS "${installed}")
    file(READ "${installed}" old)
    file(READ "${mp_work_dir}/etc/${name}" new)
    if(NOT old STREQUAL new)
      message(STATUS "Kept: ${installed} (yours differs from the shipped one, ${sharedir}/config/${name})")
      continue()
    endif()
  endif()
  file(INSTALL DESTINATION "${confdir}" TYPE FILE FILES "${mp_work_dir}/etc/${name}")
endforeach()

if(EXISTS "$ENV{DESTDIR}${confdir}/keys.env")
  message(STATUS "Kept: $ENV{DESTDIR}${confdir}/keys.env")
else()
  file(INSTALL DESTINATION "${confdir}" TYPE FILE FILES "${mp_source_dir}/packaging/keys.env"
    PERMISSIONS OWNER_READ OWNER_WRITE)
endif()

# The unit in the repository names the Debian package's paths.
file(READ "${mp_source_dir}/packaging/mistral-proxy.service" unit)
string(REPLACE "/usr/bin/mistral-proxy" "${prefix}/${mp_bindir}/mistral-proxy" unit "${unit}")
string(REPLACE "/etc/mistral-proxy" "${confdir}" unit "${unit}")
file(WRITE "${mp_work_dir}/mistral-proxy.service" "${unit}")
file(INSTALL DESTINATION "${prefix}/lib/systemd/system" TYPE FILE FILES "${mp_work_dir}/mistral-proxy.service")
