<?php
echo 'Hello';
