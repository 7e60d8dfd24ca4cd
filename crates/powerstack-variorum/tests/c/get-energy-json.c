/* In the style of Variorum's variorum-get-energy-json-example. */
#include <stdio.h>
#include <stdlib.h>
#include <variorum.h>

int main(void)
{
    char *s = NULL;
    int ret = variorum_get_energy_json(&s);
    if (ret != 0 || s == NULL)
    {
        printf("JSON get energy failed!\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}
