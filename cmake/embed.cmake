# Turns the file IN into a C source OUT defining
#   const unsigned char alkaid_default_ini[];  const unsigned long alkaid_default_ini_len;
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* generated from config/default.ini by cmake/embed.cmake; do not edit */\n"
     "extern const unsigned char alkaid_default_ini[];\n"
     "extern const unsigned long alkaid_default_ini_len;\n"
     "const unsigned char alkaid_default_ini[] = {\n${body}0x00};\n"
     "const unsigned long alkaid_default_ini_len = ${len};\n")
