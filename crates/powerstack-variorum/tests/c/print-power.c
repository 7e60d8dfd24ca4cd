/* In the style of Variorum's variorum-print-power-example: print power twice around some work. */
#include <stdio.h>
#include <variorum.h>

int main(void)
{
    int ret = variorum_print_power();
    if (ret != 0)
    {
        printf("Print power failed!\n");
        return 1;
    }
    volatile double x = 0.0;
    for (int i = 0; i < 1000000; i++)
    {
        x += i * 0.5;
    }
    ret = variorum_print_verbose_power();
    if (ret != 0)
    {
        printf("Print verbose power failed!\n");
        return 1;
    }
    ret = variorum_print_power_limit();
    if (ret != 0)
    {
        printf("Print power limit failed!\n");
        return 1;
    }
    ret = variorum_print_energy();
    if (ret != 0)
    {
        printf("Print energy failed!\n");
        return 1;
    }
    return 0;
}
