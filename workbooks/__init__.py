"""The template and demo workbooks, and the script that generates them."""
