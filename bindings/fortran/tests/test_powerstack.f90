! The Fortran module over libpowerstack on a simulated intel-2s node: open, read power and
! energy, cap a socket in range and read it back, reset, bad input refused with a code and a
! message and nothing changed. Prints "PASS fortran: N checks" or stops with code 1.
program test_powerstack
  use, intrinsic :: iso_c_binding
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use powerstack
  implicit none
  type(c_ptr) :: node
  type(ps_domain), allocatable :: d(:)
  type(ps_power_reading), allocatable :: p(:)
  type(ps_energy_reading), allocatable :: e(:)
  character(:), allocatable :: json
  real(c_double) :: node_watts, original, target, nan
  integer :: i, s0, checks
  checks = 0
  nan = ieee_value(0.0_c_double, ieee_quiet_nan)

  call check(powerstack_open(node, simulate='nonsense') == PS_ERR_INVALID, 'bad profile')
  call check(len(powerstack_error()) > 0, 'a message for the bad profile')
  call check(powerstack_open(node, simulate='intel-2s') == PS_OK, 'open intel-2s')
  call check(ps_node_is_simulated(node) == 1, 'simulated')

  call check(powerstack_power(node, 50, p, node_watts) == PS_OK, 'power')
  call check(node_watts > 0 .and. node_watts < 10000, 'node watts plausible')
  do i = 1, size(p)
     if (p(i)%domain_kind == PS_KIND_PACKAGE) then
        call check(p(i)%valid == 1 .and. p(i)%watts > 1 .and. p(i)%watts < 1000, 'package W')
     end if
  end do
  call check(powerstack_energy(node, e) == PS_OK, 'energy')
  call check(any(e%valid == 1 .and. e%joules > 0), 'some energy')
  call check(powerstack_power_json(node, 20, json) == PS_OK, 'power json')
  call check(index(json, '"schema":"powerstack.power.v1"') > 0, 'power schema')

  call check(powerstack_domains(node, d) == PS_OK, 'domains')
  s0 = 0
  do i = 1, size(d)
     if (d(i)%domain_kind == PS_KIND_PACKAGE .and. d(i)%index == 0 .and. d(i)%die < 0) s0 = i
  end do
  call check(s0 > 0, 'socket 0 listed')
  call check(d(s0)%has_limit == 1 .and. d(s0)%max_watts > 0, 'socket 0 has a limit')
  original = d(s0)%limit_watts
  target = real(floor(d(s0)%max_watts * 0.6), c_double)
  call check(target /= original, 'a new limit')

  call check(powerstack_cap_socket(node, 0, target, json=json) == PS_OK, 'cap socket 0')
  call check(index(json, '"schema":"powerstack.cap.v1"') > 0, 'cap result')
  call check(abs(limit_of_socket0() - target) < 0.5, 'socket 0 read back')

  ! Bad input: a code, a message, nothing changed.
  call check(powerstack_cap_socket(node, 9, target) == PS_ERR_UNAVAILABLE, 'socket 9')
  call check(len(powerstack_error()) > 0, 'a message for socket 9')
  call check(powerstack_cap_socket(node, 0, nan) == PS_ERR_REFUSED, 'NaN watts')
  call check(powerstack_cap_socket(node, 0, d(s0)%max_watts + 1000) == PS_ERR_REFUSED, 'above')
  call check(powerstack_cap_socket(node, -3, target) == PS_ERR_INVALID, 'socket -3')
  call check(powerstack_cap_gpu(node, 0, 100.0_c_double) == PS_ERR_UNAVAILABLE, 'no GPU')
  call check(powerstack_cap_node(node, -1.0_c_double) == PS_ERR_INVALID, 'negative node cap')
  call check(powerstack_power(c_null_ptr, 10, p, node_watts) == PS_ERR_INVALID, 'null node')
  call check(abs(limit_of_socket0() - target) < 0.5, 'refusals changed nothing')

  call check(powerstack_cap_reset(node, json=json) == PS_OK, 'reset')
  call check(limit_of_socket0() == original, 'reset restores socket 0')
  call powerstack_close(node)
  print '(a, i0, a)', 'PASS fortran: ', checks, ' checks'

contains

  subroutine check(ok, what)
    logical, intent(in) :: ok
    character(*), intent(in) :: what
    checks = checks + 1
    if (.not. ok) then
       print '(a, a, a, a)', 'FAIL: ', what, '; last error: ', powerstack_error()
       error stop 1
    end if
  end subroutine check

  real(c_double) function limit_of_socket0()
    type(ps_domain), allocatable :: now(:)
    call check(powerstack_domains(node, now) == PS_OK, 'domains again')
    limit_of_socket0 = now(s0)%limit_watts
  end function limit_of_socket0

end program test_powerstack
