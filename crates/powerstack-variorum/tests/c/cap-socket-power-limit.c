/* In the style of Variorum's variorum-cap-socket-power-limit-example: -l WATTS. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <variorum.h>

int main(int argc, char **argv)
{
    int pkg_pow_lim_watts = 100;
    int opt;
    while ((opt = getopt(argc, argv, "l:")) != -1)
    {
        if (opt == 'l')
        {
            pkg_pow_lim_watts = atoi(optarg);
        }
    }
    int ret = variorum_cap_each_socket_power_limit(pkg_pow_lim_watts);
    printf("cap_each_socket_power_limit(%d) returned %d\n", pkg_pow_lim_watts, ret);
    if (ret != 0)
    {
        return 1;
    }
    ret = variorum_print_power_limit();
    return ret == 0 ? 0 : 1;
}
