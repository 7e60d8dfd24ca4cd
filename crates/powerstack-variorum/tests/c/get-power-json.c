/* In the style of Variorum's variorum-get-power-json-example: one call, printed, freed. */
#include <stdio.h>
#include <stdlib.h>
#include <variorum.h>

int main(void)
{
    char *s = NULL;
    int ret = variorum_get_power_json(&s);
    if (ret != 0 || s == NULL)
    {
        printf("First run: JSON get node power failed!\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}
