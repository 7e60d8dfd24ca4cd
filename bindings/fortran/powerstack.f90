! powerstack: libpowerstack (crates/powerstack-c, include/powerstack.h) for Fortran.
!
! The C functions are declared here with iso_c_binding (same names as in C), and wrapped in
! Fortran-friendly procedures (powerstack_*) that take and return Fortran strings and
! allocatable arrays. Every call returns a status: PS_OK (0) or a negative code, with the
! message in powerstack_error(). A node handle (type(c_ptr)) may be used from several threads.
module powerstack
  use, intrinsic :: iso_c_binding
  implicit none
  private

  ! Status codes (ps_status).
  integer(c_int), parameter, public :: PS_OK = 0, PS_ERR_INVALID = -1, &
       PS_ERR_UNAVAILABLE = -2, PS_ERR_REFUSED = -3, PS_ERR_IO = -4, PS_ERR_INTERNAL = -5
  ! Domain kinds (ps_kind).
  integer(c_int), parameter, public :: PS_KIND_NODE = 0, PS_KIND_PLATFORM = 1, &
       PS_KIND_PACKAGE = 2, PS_KIND_CORE = 3, PS_KIND_UNCORE = 4, PS_KIND_MEMORY = 5, &
       PS_KIND_GPU = 6

  ! One domain and the limit a cap of its kind sets (ps_domain); unknown numbers are NaN.
  type, bind(c), public :: ps_domain
     integer(c_int) :: domain_kind
     integer(c_int32_t) :: index     ! socket, GPU number or 0
     integer(c_int32_t) :: die       ! -1: none
     integer(c_int32_t) :: socket    ! -1: unknown
     integer(c_int) :: has_limit, locked
     real(c_double) :: limit_watts, min_watts, max_watts, time_window_s
  end type ps_domain

  ! The power of one domain over an interval (ps_power_reading).
  type, bind(c), public :: ps_power_reading
     integer(c_int) :: domain_kind
     integer(c_int32_t) :: index, die
     integer(c_int) :: valid
     real(c_double) :: watts
  end type ps_power_reading

  ! The energy counter of one domain (ps_energy_reading).
  type, bind(c), public :: ps_energy_reading
     integer(c_int) :: domain_kind
     integer(c_int32_t) :: index, die
     integer(c_int) :: valid
     real(c_double) :: joules
  end type ps_energy_reading

  public :: ps_node_open, ps_node_close, ps_node_is_simulated, ps_domains, ps_power, &
       ps_energy, ps_power_json, ps_energy_json, ps_domains_json, ps_cap_socket, &
       ps_cap_memory, ps_cap_gpu, ps_cap_node, ps_cap_reset, ps_caps_json, ps_last_error, &
       ps_string_free
  public :: powerstack_open, powerstack_close, powerstack_error, powerstack_domains, &
       powerstack_power, powerstack_energy, powerstack_power_json, powerstack_cap_socket, &
       powerstack_cap_memory, powerstack_cap_gpu, powerstack_cap_node, powerstack_cap_reset

  interface
     integer(c_int) function ps_node_open(root, sources, simulate, node) bind(c)
       import :: c_int, c_ptr
       type(c_ptr), value :: root, sources, simulate
       type(c_ptr), intent(out) :: node
     end function ps_node_open
     subroutine ps_node_close(node) bind(c)
       import :: c_ptr
       type(c_ptr), value :: node
     end subroutine ps_node_close
     integer(c_int) function ps_node_is_simulated(node) bind(c)
       import :: c_int, c_ptr
       type(c_ptr), value :: node
     end function ps_node_is_simulated
     integer(c_int) function ps_domains(node, out, capacity, count) bind(c)
       import :: c_int, c_ptr, c_size_t
       type(c_ptr), value :: node, out
       integer(c_size_t), value :: capacity
       integer(c_size_t), intent(out) :: count
     end function ps_domains
     integer(c_int) function ps_power(node, interval_ms, out, capacity, count, node_watts) &
          bind(c)
       import :: c_int, c_ptr, c_size_t, c_int32_t, c_double
       type(c_ptr), value :: node, out
       integer(c_int32_t), value :: interval_ms
       integer(c_size_t), value :: capacity
       integer(c_size_t), intent(out) :: count
       real(c_double), intent(out) :: node_watts
     end function ps_power
     integer(c_int) function ps_energy(node, out, capacity, count) bind(c)
       import :: c_int, c_ptr, c_size_t
       type(c_ptr), value :: node, out
       integer(c_size_t), value :: capacity
       integer(c_size_t), intent(out) :: count
     end function ps_energy
     integer(c_int) function ps_power_json(node, interval_ms, json) bind(c)
       import :: c_int, c_ptr, c_int32_t
       type(c_ptr), value :: node
       integer(c_int32_t), value :: interval_ms
       type(c_ptr), intent(out) :: json
     end function ps_power_json
     integer(c_int) function ps_energy_json(node, json) bind(c)
       import :: c_int, c_ptr
       type(c_ptr), value :: node
       type(c_ptr), intent(out) :: json
     end function ps_energy_json
     integer(c_int) function ps_domains_json(node, json) bind(c)
       import :: c_int, c_ptr
       type(c_ptr), value :: node
       type(c_ptr), intent(out) :: json
     end function ps_domains_json
     integer(c_int) function ps_cap_socket(node, socket, watts, time_window_s, state_dir, &
          dry_run, result_json) bind(c)
       import :: c_int, c_ptr, c_int32_t, c_double
       type(c_ptr), value :: node, state_dir, result_json
       integer(c_int32_t), value :: socket
       real(c_double), value :: watts, time_window_s
       integer(c_int), value :: dry_run
     end function ps_cap_socket
     integer(c_int) function ps_cap_memory(node, socket, watts, state_dir, dry_run, &
          result_json) bind(c)
       import :: c_int, c_ptr, c_int32_t, c_double
       type(c_ptr), value :: node, state_dir, result_json
       integer(c_int32_t), value :: socket
       real(c_double), value :: watts
       integer(c_int), value :: dry_run
     end function ps_cap_memory
     integer(c_int) function ps_cap_gpu(node, gpu, watts, state_dir, dry_run, result_json) &
          bind(c)
       import :: c_int, c_ptr, c_int32_t, c_double
       type(c_ptr), value :: node, state_dir, result_json
       integer(c_int32_t), value :: gpu
       real(c_double), value :: watts
       integer(c_int), value :: dry_run
     end function ps_cap_gpu
     integer(c_int) function ps_cap_node(node, watts, policy, measure_ms, state_dir, dry_run, &
          result_json) bind(c)
       import :: c_int, c_ptr, c_int32_t, c_double
       type(c_ptr), value :: node, policy, state_dir, result_json
       real(c_double), value :: watts
       integer(c_int32_t), value :: measure_ms
       integer(c_int), value :: dry_run
     end function ps_cap_node
     integer(c_int) function ps_cap_reset(node, state_dir, dry_run, result_json) bind(c)
       import :: c_int, c_ptr
       type(c_ptr), value :: node, state_dir, result_json
       integer(c_int), value :: dry_run
     end function ps_cap_reset
     integer(c_int) function ps_caps_json(node, state_dir, json) bind(c)
       import :: c_int, c_ptr
       type(c_ptr), value :: node, state_dir
       type(c_ptr), intent(out) :: json
     end function ps_caps_json
     type(c_ptr) function ps_last_error() bind(c)
       import :: c_ptr
     end function ps_last_error
     subroutine ps_string_free(s) bind(c)
       import :: c_ptr
       type(c_ptr), value :: s
     end subroutine ps_string_free
     integer(c_size_t) function c_strlen(s) bind(c, name="strlen")
       import :: c_size_t, c_ptr
       type(c_ptr), value :: s
     end function c_strlen
  end interface

  ! A NUL-terminated copy of a Fortran string, for a C argument.
  type :: c_text
     character(kind=c_char), allocatable :: chars(:)
  end type c_text

contains

  ! A C string argument: `text` trimmed and NUL-terminated in `buf`, or C_NULL_PTR when absent.
  function c_arg(text, buf) result(p)
    character(*), intent(in), optional :: text
    type(c_text), target, intent(inout) :: buf
    type(c_ptr) :: p
    integer :: i, n
    p = c_null_ptr
    if (.not. present(text)) return
    n = len_trim(text)
    allocate(buf%chars(n + 1))
    do i = 1, n
       buf%chars(i) = text(i:i)
    end do
    buf%chars(n + 1) = c_null_char
    p = c_loc(buf%chars)
  end function c_arg

  ! A Fortran copy of a NUL-terminated C string (empty for C_NULL_PTR).
  function from_c(p) result(text)
    type(c_ptr), intent(in) :: p
    character(:), allocatable :: text
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    if (.not. c_associated(p)) then
       text = ''
       return
    end if
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate(character(n) :: text)
    do i = 1, n
       text(i:i) = chars(i)
    end do
  end function from_c

  ! A string libpowerstack returned, copied, then freed.
  function take_string(p) result(text)
    type(c_ptr), intent(in) :: p
    character(:), allocatable :: text
    text = from_c(p)
    call ps_string_free(p)
  end function take_string

  ! The calling thread's last error message.
  function powerstack_error() result(message)
    character(:), allocatable :: message
    message = from_c(ps_last_error())
  end function powerstack_error

  ! Opens a node: `simulate` is off, auto or a profile (intel-2s, ...); each argument left out
  ! is read from POWERSTACK_ROOT, POWERSTACK_SOURCE, POWERSTACK_SIMULATE, else /, auto, off.
  function powerstack_open(node, simulate, root, sources) result(rc)
    type(c_ptr), intent(out) :: node
    character(*), intent(in), optional :: simulate, root, sources
    integer(c_int) :: rc
    type(c_text), target :: b1, b2, b3
    node = c_null_ptr
    rc = ps_node_open(c_arg(root, b1), c_arg(sources, b2), c_arg(simulate, b3), node)
  end function powerstack_open

  ! Closes a node (a simulated one is stopped and removed).
  subroutine powerstack_close(node)
    type(c_ptr), intent(inout) :: node
    call ps_node_close(node)
    node = c_null_ptr
  end subroutine powerstack_close

  ! How many domains the node has (the length of every list of readings).
  function domain_count(node, n) result(rc)
    type(c_ptr), intent(in) :: node
    integer(c_size_t), intent(out) :: n
    integer(c_int) :: rc
    n = 0
    rc = ps_domains(node, c_null_ptr, 0_c_size_t, n)
  end function domain_count

  ! The node's domains, their limits read again first.
  function powerstack_domains(node, domains) result(rc)
    type(c_ptr), intent(in) :: node
    type(ps_domain), allocatable, target, intent(out) :: domains(:)
    integer(c_int) :: rc
    integer(c_size_t) :: n, capacity
    rc = domain_count(node, n)
    if (rc /= PS_OK) return
    allocate(domains(n))
    capacity = n
    rc = ps_domains(node, c_loc(domains), capacity, n)
  end function powerstack_domains

  ! Power of every domain over `interval_ms`, and of the node (NaN when unknown).
  function powerstack_power(node, interval_ms, readings, node_watts) result(rc)
    type(c_ptr), intent(in) :: node
    integer, intent(in) :: interval_ms
    type(ps_power_reading), allocatable, target, intent(out) :: readings(:)
    real(c_double), intent(out) :: node_watts
    integer(c_int) :: rc
    integer(c_size_t) :: n, capacity
    rc = domain_count(node, n)
    if (rc /= PS_OK) return
    allocate(readings(n))
    capacity = n
    rc = ps_power(node, int(interval_ms, c_int32_t), c_loc(readings), capacity, n, node_watts)
  end function powerstack_power

  ! Every domain's energy counter now, joules.
  function powerstack_energy(node, readings) result(rc)
    type(c_ptr), intent(in) :: node
    type(ps_energy_reading), allocatable, target, intent(out) :: readings(:)
    integer(c_int) :: rc
    integer(c_size_t) :: n, capacity
    rc = domain_count(node, n)
    if (rc /= PS_OK) return
    allocate(readings(n))
    capacity = n
    rc = ps_energy(node, c_loc(readings), capacity, n)
  end function powerstack_energy

  ! The powerstack.power.v1 document over `interval_ms`.
  function powerstack_power_json(node, interval_ms, json) result(rc)
    type(c_ptr), intent(in) :: node
    integer, intent(in) :: interval_ms
    character(:), allocatable, intent(out) :: json
    integer(c_int) :: rc
    type(c_ptr) :: p
    rc = ps_power_json(node, int(interval_ms, c_int32_t), p)
    json = ''
    if (rc == PS_OK) json = take_string(p)
  end function powerstack_power_json

  ! The powerstack.cap.v1 result of a cap call into `json` when asked.
  subroutine result_of(rc, p, json)
    integer(c_int), intent(in) :: rc
    type(c_ptr), intent(in) :: p
    character(:), allocatable, intent(out), optional :: json
    if (present(json)) then
       json = ''
       if (rc == PS_OK) json = take_string(p)
    end if
  end subroutine result_of

  ! Where a cap call puts its result: `p` when the caller asked for the JSON, else nowhere.
  function result_ptr(want, p) result(out)
    logical, intent(in) :: want
    type(c_ptr), target, intent(inout) :: p
    type(c_ptr) :: out
    p = c_null_ptr
    out = c_null_ptr
    if (want) out = c_loc(p)
  end function result_ptr

  ! Sets the long-term limit of socket `socket` (-1: every socket) to `watts`, its window to
  ! `time_window_s` (0 or absent: unchanged); `state_dir` absent: the CLI's default.
  function powerstack_cap_socket(node, socket, watts, time_window_s, state_dir, dry_run, json) &
       result(rc)
    type(c_ptr), intent(in) :: node
    integer, intent(in) :: socket
    real(c_double), intent(in) :: watts
    real(c_double), intent(in), optional :: time_window_s
    character(*), intent(in), optional :: state_dir
    logical, intent(in), optional :: dry_run
    character(:), allocatable, intent(out), optional :: json
    integer(c_int) :: rc
    type(c_text), target :: dir
    type(c_ptr), target :: p
    real(c_double) :: window
    window = 0
    if (present(time_window_s)) window = time_window_s
    rc = ps_cap_socket(node, int(socket, c_int32_t), watts, window, c_arg(state_dir, dir), &
         flag(dry_run), result_ptr(present(json), p))
    call result_of(rc, p, json)
  end function powerstack_cap_socket

  ! Sets the long-term limit of the memory of socket `socket` (-1: every one) to `watts`.
  function powerstack_cap_memory(node, socket, watts, state_dir, dry_run, json) result(rc)
    type(c_ptr), intent(in) :: node
    integer, intent(in) :: socket
    real(c_double), intent(in) :: watts
    character(*), intent(in), optional :: state_dir
    logical, intent(in), optional :: dry_run
    character(:), allocatable, intent(out), optional :: json
    integer(c_int) :: rc
    type(c_text), target :: dir
    type(c_ptr), target :: p
    rc = ps_cap_memory(node, int(socket, c_int32_t), watts, c_arg(state_dir, dir), &
         flag(dry_run), result_ptr(present(json), p))
    call result_of(rc, p, json)
  end function powerstack_cap_memory

  ! Sets the power cap of GPU `gpu` (-1: every one) to `watts`.
  function powerstack_cap_gpu(node, gpu, watts, state_dir, dry_run, json) result(rc)
    type(c_ptr), intent(in) :: node
    integer, intent(in) :: gpu
    real(c_double), intent(in) :: watts
    character(*), intent(in), optional :: state_dir
    logical, intent(in), optional :: dry_run
    character(:), allocatable, intent(out), optional :: json
    integer(c_int) :: rc
    type(c_text), target :: dir
    type(c_ptr), target :: p
    rc = ps_cap_gpu(node, int(gpu, c_int32_t), watts, c_arg(state_dir, dir), flag(dry_run), &
         result_ptr(present(json), p))
    call result_of(rc, p, json)
  end function powerstack_cap_gpu

  ! Caps the node at `watts`, split by `policy` (absent: proportional) from a measurement of
  ! `measure_ms` (absent: 500 ms).
  function powerstack_cap_node(node, watts, policy, measure_ms, state_dir, dry_run, json) &
       result(rc)
    type(c_ptr), intent(in) :: node
    real(c_double), intent(in) :: watts
    character(*), intent(in), optional :: policy, state_dir
    integer, intent(in), optional :: measure_ms
    logical, intent(in), optional :: dry_run
    character(:), allocatable, intent(out), optional :: json
    integer(c_int) :: rc
    type(c_text), target :: pol, dir
    type(c_ptr), target :: p
    integer(c_int32_t) :: ms
    ms = 0
    if (present(measure_ms)) ms = int(measure_ms, c_int32_t)
    rc = ps_cap_node(node, watts, c_arg(policy, pol), ms, c_arg(state_dir, dir), &
         flag(dry_run), result_ptr(present(json), p))
    call result_of(rc, p, json)
  end function powerstack_cap_node

  ! Puts back every limit the journal holds.
  function powerstack_cap_reset(node, state_dir, dry_run, json) result(rc)
    type(c_ptr), intent(in) :: node
    character(*), intent(in), optional :: state_dir
    logical, intent(in), optional :: dry_run
    character(:), allocatable, intent(out), optional :: json
    integer(c_int) :: rc
    type(c_text), target :: dir
    type(c_ptr), target :: p
    rc = ps_cap_reset(node, c_arg(state_dir, dir), flag(dry_run), result_ptr(present(json), p))
    call result_of(rc, p, json)
  end function powerstack_cap_reset

  ! 1 for a present .true., else 0.
  integer(c_int) function flag(value)
    logical, intent(in), optional :: value
    flag = 0
    if (present(value)) then
       if (value) flag = 1
    end if
  end function flag

end module powerstack
